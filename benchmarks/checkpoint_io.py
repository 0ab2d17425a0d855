"""Time and size of one checkpoint of the shipped Breakout DQN, with and without its buffer.

    python benchmarks/checkpoint_io.py --buffer-size 100000
    python benchmarks/checkpoint_io.py --buffer-size 100000 --replay-buffer sb3

Fills the replay buffer (`--replay-buffer`, default the shipped `frames`) with
`--buffer-size` transitions: a few hundred of real Breakout play, stored again and again.
Then writes a checkpoint (model, RNG states, replay buffer, each file flushed, hashed and
renamed, manifest last) and verifies it as `--resume` does. The frame buffer saves each
frame once; SB3's buffer pickles its two stacks per transition. Numbers are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecEnv

from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.runs.checkpoints import (
    capture_rng_states,
    read_checkpoint,
    replay_buffer_bytes,
    save_checkpoint,
)
from zoo.training.model_setup import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Breakout")
    parser.add_argument("--buffer-size", type=int, default=100_000)
    parser.add_argument("--replay-buffer", choices=("frames", "sb3"), default="frames")
    args = parser.parse_args()

    overrides = ["seed=0", f"buffer_size={args.buffer_size}", f"replay_buffer={args.replay_buffer}"]
    config = build_config("dqn", args.env, overrides=overrides)
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    root = Path(tempfile.mkdtemp(prefix="zoo-checkpoint-bench-"))
    try:
        model = build_model(config, env, "cpu")
        assert model.replay_buffer is not None  # type: ignore[attr-defined]
        fill(model.replay_buffer, env, args.buffer_size)  # type: ignore[attr-defined]
        print(f"replay buffer ({args.replay_buffer}): {args.buffer_size:,} transitions, "
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


def fill(buffer: ReplayBuffer, env: VecEnv, transitions: int) -> None:
    """Store `transitions` transitions: up to 500 of random play, then those again."""
    rng = np.random.default_rng(0)
    played = []
    obs = env.reset()
    for _ in range(min(500, transitions)):
        actions = rng.integers(0, env.action_space.n, size=env.num_envs)  # type: ignore[attr-defined]
        new_obs, rewards, dones, infos = env.step(actions)
        next_obs = np.array(new_obs)
        for index in np.flatnonzero(dones):
            next_obs[index] = infos[index]["terminal_observation"]
        played.append((np.array(obs), next_obs, actions[:, None], rewards, dones, infos))
        obs = new_obs
    for index in range(-(-transitions // env.num_envs)):
        buffer.add(*played[index % len(played)])


if __name__ == "__main__":
    main()
