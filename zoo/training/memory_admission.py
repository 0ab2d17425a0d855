"""Memory admission: a run whose replay buffer cannot fit in memory is refused at the start.

SB3 allocates its buffer with `np.zeros`, which the operating system only backs with memory
as transitions are written, so a buffer too large for the machine fails hours into a run.
zoo computes the full size of the buffer the config asks for, from the array sizes and
without allocating it, and compares it with the memory available now where the buffer will
live: main memory (psutil), or the GPU's free memory for a frame store on a CUDA device.
"""

from __future__ import annotations

import numpy as np
import psutil
import torch as th

from zoo.config.config import Config
from zoo.core.errors import UserError
from zoo.envs.stack import make_env
from zoo.replay.prioritized import priority_tree_bytes
from zoo.replay.sizing import EPISODE_START_RESERVE, frame_buffer_bytes

# Besides the buffer, a training process holds PyTorch, the networks, the optimizer state,
# the envs and a batch or two.
RUN_HEADROOM_BYTES = 1 << 30
# An action (int64 for Discrete), a reward, a done flag and a timeout flag (float32 each).
_SB3_SCALAR_BYTES = 8 + 3 * 4


def observation_shape(config: Config) -> tuple[tuple[int, ...], int]:
    """Shape and bytes per element of the observations the run's buffer stores."""
    settings = config.env_settings()
    if config.env.kind == "atari":
        return (settings.frame_stack, settings.screen_size, settings.screen_size), 1
    env = make_env(config.env, **config.env.make_kwargs())
    try:
        space = env.observation_space
    finally:
        env.close()
    shape = tuple(int(size) for size in (space.shape or (1,)))
    if settings.frame_stack > 1:  # VecFrameStack stacks along the last axis
        shape = (*shape[:-1], shape[-1] * settings.frame_stack)
    return shape, int(np.dtype(space.dtype).itemsize)


def replay_buffer_bytes_needed(config: Config) -> int:
    """Bytes the run's replay buffer takes once full; 0 for algorithms without one."""
    replay = config.replay
    if replay is None:
        return 0
    n_envs = config.n_envs
    shape, itemsize = observation_shape(config)
    if replay.replay_buffer == "frames":
        buffer_kwargs = config.hyperparams.get("replay_buffer_kwargs") or {}
        reserve = buffer_kwargs.get("episode_start_reserve", EPISODE_START_RESERVE)
        needed = frame_buffer_bytes(replay.buffer_size, shape, n_envs, reserve)
        if config.hyperparams.get("prioritized_replay"):
            needed += priority_tree_bytes(replay.buffer_size, n_envs)
        return needed
    transitions = max(replay.buffer_size // n_envs, 1) * n_envs
    copies = 1 if replay.optimize_memory_usage else 2
    return transitions * (copies * int(np.prod(shape)) * itemsize + _SB3_SCALAR_BYTES)


def memory_available_for_the_buffer(config: Config, device: str) -> tuple[int, str]:
    """Free bytes where the run's buffer will live, and what that memory is called."""
    replay = config.replay
    on_device = replay is not None and replay.frame_store == "device"
    if on_device and th.device(device).type == "cuda":
        free, _total = th.cuda.mem_get_info(th.device(device))
        return int(free), "GPU memory"
    return int(psutil.virtual_memory().available), "memory"


def admit_replay_buffer(config: Config, device: str = "cpu", available: int | None = None) -> int:
    """The buffer's full size in bytes, or one line saying it cannot fit and what to lower."""
    needed = replay_buffer_bytes_needed(config)
    if needed == 0:
        return 0
    where = "memory"
    if available is None:
        available, where = memory_available_for_the_buffer(config, device)
    if needed + RUN_HEADROOM_BYTES <= available:
        return needed
    replay = config.replay
    assert replay is not None  # only a replay buffer needs memory here
    buffer_size = replay.buffer_size
    fitting = int(max(available - RUN_HEADROOM_BYTES, 0) / needed * buffer_size)
    hint = (
        f"lower buffer_size (about {fitting:,} fits here, e.g. --set buffer_size={fitting})"
        if fitting >= 1
        else "free memory first"
    )
    if replay.replay_buffer == "sb3" and config.env.kind == "atari":
        hint += " or store each frame once with --set replay_buffer=frames"
    raise UserError(
        f"buffer_size {buffer_size:,}: the replay buffer needs {_gb(needed)} of {where} when "
        f"full (plus about {_gb(RUN_HEADROOM_BYTES)} for the rest of the run) and "
        f"{_gb(available)} is available; {hint}"
    )


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:,.2f} GB"
