"""Training throughput of `zoo train` settings: agent steps per second after learning starts.

    python benchmarks/train_throughput.py --algo dqn a2c --env Breakout --steps 10000

Each algo uses its shipped hyperparameters for the game (for DQN: Double + Dueling + 3-step;
`--set` changes any of them), except that DQN's learning_starts is lowered so the measurement starts soon. A warm-up (which for
DQN fills the replay buffer up to learning_starts) runs first; only the steps after it are
timed. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time

import torch as th

from zoo.config import build_config
from zoo.envs import make_vec_env_for
from zoo.train import build_model


def measure(algo: str, env_name: str, steps: int, warmup: int, overrides: list[str]) -> float:
    if algo in ("dqn", "qrdqn"):
        overrides = [f"learning_starts={warmup}", *overrides]
    config = build_config(algo, env_name, overrides=["seed=0", *overrides])
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    try:
        model = build_model(config, env, "cpu")
        model.learn(total_timesteps=warmup)
        start_steps, start = model.num_timesteps, time.perf_counter()
        model.learn(total_timesteps=steps, reset_num_timesteps=False)
        elapsed = time.perf_counter() - start
        return (model.num_timesteps - start_steps) / elapsed
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", nargs="+", default=["dqn", "a2c"])
    parser.add_argument("--env", default="Breakout")
    parser.add_argument("--steps", type=int, default=10_000, help="timed agent steps")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed agent steps first")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print(f"torch threads: {th.get_num_threads()}, env: {args.env}, timed steps: {args.steps}")
    for algo in args.algo:
        rate = measure(algo, args.env, args.steps, args.warmup, args.set)
        print(f"{algo:6s} {rate:8.1f} agent steps/s  (10M steps: {1e7 / rate / 3600:.1f} h)")


if __name__ == "__main__":
    main()
