"""Replay memory of Breakout DQN: bytes, sampling time and training speed, frame buffer vs SB3.

    python benchmarks/replay_memory.py --fill 20000 --train-steps 2000

1. Bytes of a full buffer of 100k and 1M transitions, from the array sizes (nothing that
   large is allocated): zoo's frame buffer (`replay_buffer: frames`) and SB3's
   `ReplayBuffer` / `NStepReplayBuffer` (`replay_buffer: sb3`). A frame buffer of
   `--allocate` transitions is also built and its arrays counted, to check the formula.
2. Time to sample a batch of 32 from both, 1-step and 3-step, each holding `--fill`
   transitions: a few hundred real Breakout transitions (zoo's `ale` env stack, random play)
   stored again and again. The frame buffer is timed twice: its frames in main memory
   (`frame_store: host`) and on `--device` (`frame_store: device`; on a GPU no batch of
   stacks is copied from the host).
3. Agent steps per second of the shipped Breakout DQN training with each buffer (the frame
   buffer with either store) on `--device`, after `--warmup` untimed steps, epsilon at its
   final value; `--repeat N` alternates them N times and prints each median; `--set
   KEY=VALUE` changes a hyperparameter of all.

Numbers are printed, never asserted.
"""

from __future__ import annotations

import os

# Before PyTorch loads, as `zoo` does it (zoo/core/threads.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer

from zoo.config.config import build_config
from zoo.core.threads import apply_torch_threads
from zoo.envs.stack import make_vec_env_for
from zoo.replay.frame_buffer import FrameReplayBuffer
from zoo.replay.sizing import frame_buffer_bytes, sb3_buffer_bytes
from zoo.training.model_setup import build_model

OBSERVATION = (4, 84, 84)


def show_bytes(allocate: int) -> None:
    print("bytes of a full buffer (Breakout, 4 x 84 x 84 frames, 1 env):")
    for transitions in (100_000, 1_000_000):
        frames = frame_buffer_bytes(transitions, OBSERVATION, 1)
        sb3 = sb3_buffer_bytes(transitions, OBSERVATION, 1)
        print(f"  {transitions:>9,} transitions: frames {_size(frames)}   sb3 {_size(sb3)}   "
              f"{sb3 / frames:.1f}x smaller")  # fmt: skip
    observation_space, action_space = _spaces()
    buffer = FrameReplayBuffer(allocate, observation_space, action_space, device="cpu")
    counted = sum(v.nbytes for v in vars(buffer).values() if isinstance(v, np.ndarray))
    print(f"  a frame buffer of {allocate:,} built here: its arrays hold {counted:,} bytes "
          f"(formula: {frame_buffer_bytes(allocate, OBSERVATION, 1):,})")  # fmt: skip


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:6.2f} GB ({n_bytes / 2**30:5.2f} GiB)"


def _spaces() -> tuple[Any, Any]:
    config = build_config("dqn", "Breakout", overrides=["vec_env=ale", "n_envs=1"])
    env = make_vec_env_for(config.env, config.env_settings(), 0)
    spaces = env.observation_space, env.action_space
    env.close()
    return spaces


def real_transitions(count: int) -> list[tuple[Any, ...]]:
    """`count` transitions of random Breakout play as SB3's training loop stores them."""
    config = build_config("dqn", "Breakout", overrides=["vec_env=ale", "n_envs=1", "seed=0"])
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    rng = np.random.default_rng(0)
    stored = []
    try:
        obs = env.reset()
        for _ in range(count):
            action = rng.integers(0, env.action_space.n, size=(1, 1))  # type: ignore[attr-defined]
            new_obs, rewards, dones, infos = env.step(action[:, 0])
            next_obs = np.array(new_obs)
            if dones[0]:
                next_obs[0] = infos[0]["terminal_observation"]
            stored.append((np.array(obs), next_obs, action, rewards, dones, infos))
            obs = new_obs
    finally:
        env.close()
    return stored


def show_sampling(fill: int, batches: int, device: str) -> None:
    observation_space, action_space = _spaces()
    stream = real_transitions(500)
    print(f"\nsampling a batch of 32 from {fill:,} transitions onto {device} (median of "
          f"{batches} batches, the buffers in turn):")  # fmt: skip
    for n_steps in (1, 3):
        common: dict[str, Any] = {"device": device, "n_steps": n_steps}
        frames = FrameReplayBuffer(fill, observation_space, action_space, **common)
        on_device = FrameReplayBuffer(
            fill, observation_space, action_space, **common, frames_on_device=True
        )
        sb3 = (
            ReplayBuffer(fill, observation_space, action_space, device=device)
            if n_steps == 1
            else NStepReplayBuffer(fill, observation_space, action_space, **common)
        )
        add_times = _fill((frames, on_device, sb3), stream, fill)
        frames_time, on_device_time, sb3_time = _sample_times((frames, on_device, sb3), batches)
        del frames, on_device, sb3
        print(f"  n_steps {n_steps}: frames {frames_time * 1e6:7.1f} us   "
              f"frames on {device} {on_device_time * 1e6:7.1f} us   "
              f"sb3 {sb3_time * 1e6:7.1f} us   frames / sb3 {frames_time / sb3_time:.2f}")  # fmt: skip
    print(f"storing one transition (median of {fill:,}): frames {add_times[0] * 1e6:.1f} us   "
          f"frames on {device} {add_times[1] * 1e6:.1f} us   "
          f"sb3 {add_times[2] * 1e6:.1f} us")  # fmt: skip


def _fill(
    buffers: tuple[ReplayBuffer, ...], stream: list[tuple[Any, ...]], fill: int
) -> list[float]:
    """Store `fill` transitions in each buffer, in turn; the median time of one `add`."""
    durations: list[list[float]] = [[] for _ in buffers]
    for index in range(fill):
        for buffer, found in zip(buffers, durations, strict=True):
            start = time.perf_counter()
            buffer.add(*stream[index % len(stream)])
            found.append(time.perf_counter() - start)
    return [statistics.median(found) for found in durations]


def _sample_times(buffers: tuple[ReplayBuffer, ...], batches: int) -> list[float]:
    """Median time of `sample(32)` of each buffer, taken in turn so that other processes on
    the machine slow them alike."""
    np.random.seed(0)
    durations: list[list[float]] = [[] for _ in buffers]
    for batch in range(batches + 20):
        for buffer, found in zip(buffers, durations, strict=True):
            start = time.perf_counter()
            buffer.sample(32)
            if buffer.device.type == "cuda":
                th.cuda.synchronize(buffer.device)  # the batch is there, not just queued
            if batch >= 20:  # after a warm-up
                found.append(time.perf_counter() - start)
    return [statistics.median(found) for found in durations]


# The buffers the training runs compare, as hyperparameter settings.
TRAINING_BUFFERS: dict[str, list[str]] = {
    "frames": ["replay_buffer=frames", "frame_store=host"],
    "frames on device": ["replay_buffer=frames", "frame_store=device"],
    "sb3": ["replay_buffer=sb3"],
}


def training_rate(
    buffer: list[str], steps: int, warmup: int, buffer_size: int, extra: list[str], device: str
) -> float:
    overrides = [
        "seed=0",
        *buffer,
        f"buffer_size={buffer_size}",
        f"learning_starts={warmup}",
        "exploration=0.01",  # the shipped schedule's final value, as over most of a run
        *extra,
    ]
    config = build_config("dqn", "Breakout", overrides=overrides)
    apply_torch_threads(config.run.torch_threads)
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    try:
        model = build_model(config, env, device)
        model.learn(total_timesteps=warmup)
        start_steps, start = model.num_timesteps, time.perf_counter()
        model.learn(total_timesteps=steps, reset_num_timesteps=False)
        return (model.num_timesteps - start_steps) / (time.perf_counter() - start)
    finally:
        env.close()


def show_training(
    steps: int, warmup: int, repeat: int, buffer_size: int, extra: list[str], device: str
) -> None:
    print(f"\nDQN training on {device}, shipped Breakout settings, buffer {buffer_size:,}, "
          f"{steps:,} timed steps after {warmup:,}, {repeat} round(s):")  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name in TRAINING_BUFFERS}
    for _ in range(repeat):
        for name, found in rates.items():
            rate = training_rate(TRAINING_BUFFERS[name], steps, warmup, buffer_size, extra, device)
            found.append(rate)
    for name, found in rates.items():
        runs = ", ".join(f"{rate:.1f}" for rate in found)
        print(f"  {name:16s} {statistics.median(found):7.1f} steps/s (runs: {runs})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocate", type=int, default=100_000)
    parser.add_argument("--fill", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--buffer-size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where batches go: cpu or cuda")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="for the training runs"
    )
    args = parser.parse_args()
    show_bytes(args.allocate)
    show_sampling(args.fill, args.batches, args.device)
    if args.train_steps > 0:
        show_training(
            args.train_steps, args.warmup, args.repeat, args.buffer_size, args.set, args.device
        )


if __name__ == "__main__":
    main()
