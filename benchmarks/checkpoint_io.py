"""Time and size of one checkpoint of the shipped Breakout DQN, with and without its buffer.

    python benchmarks/checkpoint_io.py --buffer-size 100000

Writes a checkpoint (model, RNG states, replay buffer of `--buffer-size` transitions, each
file flushed, hashed and renamed, manifest last), then verifies it as `--resume` does.
The buffer is full size on disk whatever it holds: SB3 pickles its preallocated arrays.
Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from zoo.checkpoints import (
    capture_rng_states,
    read_checkpoint,
    replay_buffer_bytes,
    save_checkpoint,
)
from zoo.config import build_config
from zoo.envs import make_vec_env_for
from zoo.train import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Breakout")
    parser.add_argument("--buffer-size", type=int, default=100_000)
    args = parser.parse_args()

    config = build_config("dqn", args.env, overrides=["seed=0", f"buffer_size={args.buffer_size}"])
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    root = Path(tempfile.mkdtemp(prefix="zoo-checkpoint-bench-"))
    try:
        model = build_model(config, env, "cpu")
        print(f"replay buffer: {args.buffer_size:,} transitions, "
              f"{replay_buffer_bytes(model) / 2**30:.2f} GiB in memory")  # fmt: skip
        for with_buffer in (False, True):
            model.num_timesteps += 1
            start = time.perf_counter()
            checkpoint = save_checkpoint(
                model, root, {"rng": capture_rng_states()}, with_replay_buffer=with_buffer
            )
            written = time.perf_counter() - start
            start = time.perf_counter()
            read_checkpoint(checkpoint.path)
            verified = time.perf_counter() - start
            size = sum(int(record["bytes"]) for record in checkpoint.files.values())
            label = "with replay buffer" if with_buffer else "model only"
            print(f"{label:20s} {size / 2**20:9.1f} MiB  write {written:6.2f} s  "
                  f"verify {verified:6.2f} s")  # fmt: skip
    finally:
        env.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
