"""The size arithmetic of the frame replay buffer: the frames one env's ring holds, the
arrays a `FrameReplayBuffer` allocates and the bytes they take (beside SB3's own buffer for
the same transitions), and the observation spaces it takes. Memory admission sizes a buffer
from these before anything is allocated."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

# Share of the ring kept for the extra frame each episode start costs: one start in 32
# transitions before the oldest ones lose their frames (a lost life costs none on `ale`).
EPISODE_START_RESERVE = 1 / 32


def frame_capacity(
    transitions_per_env: int, stack: int, reserve: float = EPISODE_START_RESERVE
) -> int:
    """Frames in one env's ring: one per transition, the stack of the oldest one, and a
    reserve for episode starts (each writes one frame more)."""
    return transitions_per_env + stack + 1 + int(np.ceil(transitions_per_env * reserve))


ArraySpec = tuple[tuple[int, ...], np.dtype]


def frame_buffer_arrays(
    buffer_size: int,
    observation_shape: tuple[int, ...],
    n_envs: int,
    episode_start_reserve: float = EPISODE_START_RESERVE,
    action_shape: tuple[int, ...] = (1,),
    action_dtype: type[np.generic] | np.dtype = np.int64,
    frame_dtype: type[np.generic] | np.dtype = np.uint8,
) -> dict[str, ArraySpec]:
    """Shape and dtype of every array a `FrameReplayBuffer` allocates, by attribute name:
    its __init__ allocates exactly these, and memory admission sums them."""
    stack, per_env = observation_shape[0], max(buffer_size // n_envs, 1)
    ring = frame_capacity(per_env, stack, episode_start_reserve)
    transitions, envs = (per_env, n_envs), (n_envs,)
    f32 = np.dtype(np.float32)
    return {
        "actions": ((*transitions, *action_shape), np.dtype(action_dtype)),
        "rewards": (transitions, f32),
        "dones": (transitions, f32),
        "timeouts": (transitions, f32),
        "frames": ((ring, n_envs, *observation_shape[1:]), np.dtype(frame_dtype)),
        "frames_written": (envs, np.dtype(np.int64)),
        "newest_frame": (transitions, np.dtype(np.int64)),  # frame number, counted per env
        "history": (transitions, np.dtype(np.uint8)),
        # Each env's previous next observation and its history: the next `obs` continues it.
        "pending": ((n_envs, *observation_shape), np.dtype(frame_dtype)),
        "pending_history": (envs, np.dtype(np.uint8)),
        "has_pending": (envs, np.dtype(bool)),
    }


def frame_buffer_bytes(
    buffer_size: int,
    observation_shape: tuple[int, ...],
    n_envs: int,
    episode_start_reserve: float = EPISODE_START_RESERVE,
) -> int:
    """Bytes a full `FrameReplayBuffer` takes, from its array sizes (nothing is allocated)."""
    arrays = frame_buffer_arrays(buffer_size, observation_shape, n_envs, episode_start_reserve)
    return sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in arrays.values())


def sb3_buffer_bytes(buffer_size: int, observation_shape: tuple[int, ...], n_envs: int) -> int:
    """Bytes SB3's `ReplayBuffer` (or `NStepReplayBuffer`) takes for the same transitions:
    two uint8 stacks, an int64 action and three float32 per transition."""
    per_env = max(buffer_size // n_envs, 1)
    stack_bytes = int(np.prod(observation_shape))
    return per_env * n_envs * (2 * stack_bytes + 8 + 3 * 4)


def check_frame_stack_space(observation_space: spaces.Space) -> None:
    """FrameReplayBuffer takes channel-first uint8 stacks of 2-D frames, (stack, H, W)."""
    if not (
        isinstance(observation_space, spaces.Box)
        and observation_space.dtype == np.uint8
        and len(observation_space.shape) == 3
    ):
        raise ValueError(
            "FrameReplayBuffer needs uint8 frame stacks of shape (stack, height, width), "
            f"got {observation_space}"
        )
