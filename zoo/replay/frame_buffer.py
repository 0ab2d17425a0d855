"""A replay buffer for stacked pixel frames that stores each frame once.

SB3's `ReplayBuffer` keeps two stacks of four 84x84 frames per transition (56 kB); seven of
those eight frames are also in the neighbouring transitions. `FrameReplayBuffer` keeps one
ring of frames per env (about one 7 kB frame per transition) and rebuilds `observations` and
`next_observations` when it samples, as Dopamine does. It is an SB3 `ReplayBuffer`
(`replay_buffer_class`), so the rest of SB3's training loop is unchanged, and its batches are
those of SB3's `ReplayBuffer` (`n_steps: 1`) or SB3's `NStepReplayBuffer` (`n_steps > 1`),
bit for bit, for the same indices and random numbers (tests/test_frame_buffer.py).

How a stack is stored. Each transition records the frame number of its observation's newest
frame and its `history`: how many frames before that one the stack holds; the older positions
are zeros, as VecFrameStack and the `ale` backend clear a stack when an episode begins. The
next observation is always the next frame number, with one more frame of history. Nothing
about episodes is assumed: `add` compares each observation with the previous next
observation of its env; where they differ (a new episode, a lost life, a resumed run) the
observation's own frames are written (a frame equal to the newest stored one is reused), so
what comes back is what went in. An env whose next observation is not its observation
shifted by one frame is not a frame stack and is refused.

The ring holds a little more than one frame per transition (`frame_capacity`): an episode
start costs one frame more. Should episode starts be so frequent that the frames of the
oldest transitions are overwritten, those transitions are never sampled (their draws are
drawn again): a sampled stack never straddles the ring's write position.

Why a class of our own rather than cpprb (`stack_compress`, `next_of`) or torchrl's
storages: the batches must be SB3's, field by field (rewards, done masks and discounts of
SB3's n-step returns, several envs side by side, `TimeLimit.truncated`), which neither gives;
cpprb has had no release since 2024 and stacks one env's frames with its own episode
convention; torchrl pins PyTorch versions and brings tensordict. The class here is one ring
and two small index arrays over numpy, pickles as it is (checkpoints hold the compact form)
and is checked bit for bit against SB3's buffers.

Where the frames live (`frames_on_device`). By default the ring is a numpy array in main
memory and a sampled batch is copied to the network's device. With `frames_on_device` the
ring is a uint8 tensor on the model's device (a GPU's memory, say): each step writes its new
frames there (a few kB), and a batch is gathered there, so no batch of stacks crosses from
host to device; only the small index arrays do. Checkpoints hold the same compact numpy form
either way, so a run can resume with the other setting or on another device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from zoo.replay.sizing import EPISODE_START_RESERVE, check_frame_stack_space, frame_buffer_arrays

# A frame number no ring holds: a transition whose frames are gone is never drawn.
_OUT_OF_REACH = -(2**62)


class FrameReplayBuffer(ReplayBuffer):
    """SB3's replay buffer for channel-first uint8 frame stacks, each frame stored once.

    `n_steps` > 1 gives SB3's n-step returns (discounted by `gamma`), as `NStepReplayBuffer`.
    `episode_start_reserve`: frames kept for episode starts, as a share of the transitions.
    `frames_on_device`: keep the frame ring on `device` and gather batches there.
    """

    frames: np.ndarray | th.Tensor
    # The other arrays of `frame_buffer_arrays`, besides SB3's actions, rewards, dones, timeouts.
    frames_written: np.ndarray
    newest_frame: np.ndarray
    history: np.ndarray
    pending: np.ndarray
    pending_history: np.ndarray
    has_pending: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 1,
        gamma: float = 0.99,
        episode_start_reserve: float = EPISODE_START_RESERVE,
        frames_on_device: bool = False,
    ) -> None:
        check_frame_stack_space(observation_space)
        if optimize_memory_usage:
            raise ValueError("FrameReplayBuffer stores each frame once already")
        # SB3's ReplayBuffer.__init__ would allocate two full stacks per transition.
        BaseBuffer.__init__(
            self, buffer_size, observation_space, action_space, device, n_envs=n_envs
        )
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.n_steps = n_steps
        self.gamma = gamma
        self.stack = int(self.obs_shape[0])
        arrays = frame_buffer_arrays(
            buffer_size,
            self.obs_shape,
            n_envs,
            episode_start_reserve,
            action_shape=(self.action_dim,),
            action_dtype=np.dtype(self._maybe_cast_dtype(action_space.dtype)),
            frame_dtype=np.dtype(observation_space.dtype),
        )
        ring_shape, ring_dtype = arrays.pop("frames")
        for name, (shape, dtype) in arrays.items():
            setattr(self, name, np.zeros(shape, dtype=dtype))
        self.frame_capacity = ring_shape[0]
        # Slot-major, so the written part of the ring is one contiguous block.
        self.frames_on_device = frames_on_device
        self.frames = self._placed(np.zeros(ring_shape, dtype=ring_dtype))

    # -- storing -------------------------------------------------------------------------

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        obs = np.asarray(obs).reshape((self.n_envs, *self.obs_shape))
        next_obs = np.asarray(next_obs).reshape((self.n_envs, *self.obs_shape))
        shifted = (next_obs[:, :-1] == obs[:, 1:]).reshape(self.n_envs, -1).all(axis=1)
        if not shifted.all():
            raise ValueError(
                "FrameReplayBuffer: a next observation is not its observation shifted by one "
                "frame; the env does not stack frames (use SB3's replay buffer)"
            )
        continues = self.has_pending & (obs == self.pending).reshape(self.n_envs, -1).all(axis=1)
        fresh = map(int, np.flatnonzero(~continues))
        starts = {env: self._frames_to_store(env, obs[env]) for env in fresh}
        new_frames = np.ones(self.n_envs, dtype=np.int64)  # each next observation's newest
        for env, frames in starts.items():
            new_frames[env] += len(frames)
        self._make_room(new_frames)
        newest = self.frames_written - 1
        history = self.pending_history.copy()
        for env, frames in starts.items():
            newest[env], history[env] = self._store_frames(env, frames)
        # Every next observation adds one frame after its observation's newest frame.
        self._write_frames(self.frames_written % self.frame_capacity, next_obs[:, -1])
        self.frames_written += 1
        self.newest_frame[self.pos] = newest
        self.history[self.pos] = history
        self.pending[:] = next_obs
        self.pending_history = np.minimum(history + 1, self.stack - 1).astype(np.uint8)
        self.has_pending[:] = True

        self.actions[self.pos] = np.asarray(action).reshape((self.n_envs, self.action_dim))
        self.rewards[self.pos] = np.asarray(reward)
        self.dones[self.pos] = np.asarray(done)
        if self.handle_timeout_termination:
            self.timeouts[self.pos] = [info.get("TimeLimit.truncated", False) for info in infos]
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def _make_room(self, new_frames: np.ndarray) -> None:
        """Grow the ring before writing `new_frames[env]` frames would overwrite a frame that a
        transition kept after this add still needs: episode starts outran the reserve. The
        ring grows by at least its reserve again, so growths are few."""
        needed = int((self.frames_written + new_frames - self._oldest_needed_frames()).max())
        if needed <= self.frame_capacity:
            return
        reserve = self.frame_capacity - (self.buffer_size + self.stack + 1)
        self._resize_ring(max(needed, self.frame_capacity + max(reserve, self.stack + 1)))

    def _oldest_needed_frames(self) -> np.ndarray:
        """Per env, the oldest frame of the oldest transition kept after the next add (the
        transition at `pos` is replaced by it); the frames written so far if none is kept."""
        if self.full and self.buffer_size > 1:
            row = (self.pos + 1) % self.buffer_size
        elif not self.full and self.pos > 0:
            row = 0
        else:
            return self.frames_written.copy()
        oldest = self.newest_frame[row] - self.history[row]
        # Frames already gone (a buffer saved before rings grew) need no room.
        gone = oldest < self.frames_written - self.frame_capacity
        return np.where(gone, self.frames_written, np.minimum(oldest, self.frames_written))

    def _resize_ring(self, capacity: int) -> None:
        """A ring of `capacity` frames per env, each frame still stored moved to its slot
        there (frame n lives in slot n % capacity). Transitions whose frames were already
        overwritten (a buffer saved before rings grew) stay out of reach."""
        old_capacity, old = self.frame_capacity, self.frames
        shape = (capacity, *old.shape[1:])
        ring: np.ndarray | th.Tensor = (
            th.zeros(shape, dtype=old.dtype, device=old.device)
            if isinstance(old, th.Tensor)
            else np.zeros(shape, dtype=old.dtype)
        )
        for env in range(self.n_envs):
            written = int(self.frames_written[env])
            numbers = np.arange(max(written - old_capacity, 0), written)
            ring[numbers % capacity, env] = old[numbers % old_capacity, env]
            lost = self.newest_frame[:, env] - self.history[:, env] < written - old_capacity
            self.newest_frame[lost, env] = _OUT_OF_REACH
        self.frames, self.frame_capacity = ring, capacity

    def _frames_to_store(self, env: int, stack: np.ndarray) -> np.ndarray:
        """The frames of a stack that does not continue the env's last one that its ring must
        store: not the leading all-zero ones, and none for a lone frame equal to the newest
        stored one (e.g. a lost life on `ale`: the game goes on from the same frame)."""
        nonzero: np.ndarray = np.any(stack.reshape(self.stack, -1), axis=1)
        first = int(np.argmax(nonzero)) if nonzero[:-1].any() else self.stack - 1
        written = int(self.frames_written[env])
        if first == self.stack - 1 and written > 0:
            newest_stored = self._stored_frame((written - 1) % self.frame_capacity, env)
            if np.array_equal(newest_stored, stack[-1]):
                return stack[:0]
        return stack[first:]

    def _store_frames(self, env: int, frames: np.ndarray) -> tuple[int, int]:
        """Write a stack's `_frames_to_store`; returns the number of its newest frame and its
        history (its stored frames before the newest)."""
        written = int(self.frames_written[env])
        if len(frames) == 0:
            return written - 1, 0
        slots = (written + np.arange(len(frames))) % self.frame_capacity
        self._write_frames(slots, frames, env)
        self.frames_written[env] += len(frames)
        return written + len(frames) - 1, len(frames) - 1

    # -- the frame ring, in host memory or on the device ----------------------------------

    def _placed(self, frames: np.ndarray) -> np.ndarray | th.Tensor:
        """The ring where `frames_on_device` puts it (the numpy array itself when on the host)."""
        return th.as_tensor(frames, device=self.device) if self.frames_on_device else frames

    def _write_frames(self, slots: np.ndarray, frames: np.ndarray, env: int | None = None) -> None:
        """frames[i] goes to slot slots[i] of env `env`, or of env i when `env` is None."""
        envs = np.arange(self.n_envs) if env is None else np.full(len(frames), env)
        if isinstance(self.frames, th.Tensor):
            where = self.frames.device
            self.frames[th.as_tensor(slots, device=where), th.as_tensor(envs, device=where)] = (
                th.as_tensor(frames, device=where)
            )
        else:
            self.frames[slots, envs] = frames

    def _stored_frame(self, slot: int, env: int) -> np.ndarray:
        frame = self.frames[slot, env]
        return frame.cpu().numpy() if isinstance(frame, th.Tensor) else frame

    @property
    def device(self) -> th.device:
        return self._device

    @device.setter
    def device(self, device: th.device | str) -> None:
        # SB3 sets the device again after loading a saved buffer: the ring moves with it.
        self._device = th.device(device) if isinstance(device, str) else device
        ring = getattr(self, "frames", None)
        if isinstance(ring, th.Tensor):
            self.frames = ring.to(self._device)

    # -- sampling ------------------------------------------------------------------------

    def rebuildable(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        """Whether each transition's frames are still in its env's ring. Later transitions of
        an env only use later frames, so its next (and n-step) observations are there too."""
        oldest = self.newest_frame[batch_inds, env_indices] - self.history[batch_inds, env_indices]
        return oldest >= self.frames_written[env_indices] - self.frame_capacity

    def _get_samples(
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> ReplayBufferSamples:
        # The same random numbers as SB3's buffers: env indices drawn here, as there.
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        batch_inds, env_indices = self._redraw_unrebuildable(batch_inds, env_indices)
        return self._samples_at(batch_inds, env_indices, env)

    def _samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples:
        """The batch of transitions (batch_inds, env_indices), whose frames are all there."""
        if self.n_steps > 1:
            return self._n_step_samples(batch_inds, env_indices, env)
        obs = self._normalize_obs(self._stacks(batch_inds, env_indices), env)
        next_obs = self._normalize_obs(self._next_stacks(batch_inds, env_indices), env)
        # Only dones that are not due to timeouts, as in SB3's ReplayBuffer.
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        rewards = self.rewards[batch_inds, env_indices].reshape(-1, 1)
        return ReplayBufferSamples(
            observations=self._stack_tensor(obs),
            actions=self.to_torch(self.actions[batch_inds, env_indices, :]),
            next_observations=self._stack_tensor(next_obs),
            dones=self.to_torch(dones.reshape(-1, 1)),
            rewards=self.to_torch(self._normalize_reward(rewards, env)),
        )

    def _stack_tensor(self, stacks: np.ndarray | th.Tensor | dict[str, np.ndarray]) -> th.Tensor:
        """The stacks were gathered for this batch alone: no second copy (SB3 copies)."""
        return th.as_tensor(stacks, device=self.device)

    def _redraw_unrebuildable(
        self, batch_inds: np.ndarray, env_indices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw again the transitions whose frames were overwritten (only when episode starts
        outran the ring's reserve); the newest transition of every env is always there."""
        batch_inds, env_indices = np.array(batch_inds), np.array(env_indices)
        upper = self.buffer_size if self.full else self.pos
        lost = ~self.rebuildable(batch_inds, env_indices)
        while lost.any():
            count = int(lost.sum())
            batch_inds[lost] = np.random.randint(0, upper, size=count)
            env_indices[lost] = np.random.randint(0, self.n_envs, size=count)
            lost = ~self.rebuildable(batch_inds, env_indices)
        return batch_inds, env_indices

    def _n_step_samples(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples:
        """SB3's NStepReplayBuffer._get_samples, step for step, with rebuilt stacks."""
        # The transition before self.pos is cut (temporarily truncated) unless done, so that
        # no n-step return runs across the write position into the oldest transitions.
        last_valid_index = self.pos - 1
        original_timeout_values = self.timeouts[last_valid_index].copy()
        self.timeouts[last_valid_index] = np.logical_or(
            original_timeout_values, np.logical_not(self.dones[last_valid_index])
        )
        steps = np.arange(self.n_steps).reshape(1, -1)
        indices = (batch_inds[:, None] + steps) % self.buffer_size
        rewards_seq = self._normalize_reward(self.rewards[indices, env_indices[:, None]], env)
        dones_seq = self.dones[indices, env_indices[:, None]]
        truncated_seq = self.timeouts[indices, env_indices[:, None]]
        # Rewards count up to the first done or truncation, inclusive.
        done_or_truncated = np.logical_or(dones_seq, truncated_seq)
        done_idx = done_or_truncated.argmax(axis=1)
        has_done_or_truncated = done_or_truncated.any(axis=1)
        done_idx = np.where(has_done_or_truncated, done_idx, self.n_steps - 1)
        mask = np.arange(self.n_steps).reshape(1, -1) <= done_idx[:, None]
        target_q_discounts = self.gamma ** mask.sum(axis=1, keepdims=True).astype(np.float32)
        discounts = self.gamma ** np.arange(self.n_steps, dtype=np.float32).reshape(1, -1)
        n_step_returns = (rewards_seq * discounts * mask).sum(axis=1, keepdims=True)
        last_indices = (batch_inds + done_idx) % self.buffer_size
        next_obs = self._normalize_obs(self._next_stacks(last_indices, env_indices), env)
        next_dones = self.dones[last_indices, env_indices][:, None].astype(np.float32)
        next_timeouts = self.timeouts[last_indices, env_indices][:, None].astype(np.float32)
        final_dones = next_dones * (1.0 - next_timeouts)
        self.timeouts[last_valid_index] = original_timeout_values
        obs = self._normalize_obs(self._stacks(batch_inds, env_indices), env)
        return ReplayBufferSamples(
            observations=self._stack_tensor(obs),
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations=self._stack_tensor(next_obs),
            dones=self.to_torch(final_dones),
            rewards=self.to_torch(n_step_returns),
            discounts=self.to_torch(target_q_discounts),
        )

    def _stacks(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        """The observations of transitions (batch_inds, env_indices)."""
        newest = self.newest_frame[batch_inds, env_indices]
        history = self.history[batch_inds, env_indices].astype(np.int64)
        return self._gather(newest, history, env_indices)

    def _next_stacks(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        """The next observations: one frame on, with one more frame of history."""
        newest = self.newest_frame[batch_inds, env_indices] + 1
        history = self.history[batch_inds, env_indices].astype(np.int64) + 1
        return self._gather(newest, np.minimum(history, self.stack - 1), env_indices)

    def _gather(self, newest: np.ndarray, history: np.ndarray, envs: np.ndarray) -> Any:
        """The stacks: a numpy array, or a tensor where the ring is (`frames_on_device`)."""
        offsets = np.arange(1 - self.stack, 1)  # oldest position first, as in the stack
        slots = (newest[:, None] + offsets) % self.frame_capacity
        blank = offsets[None, :] < -history[:, None]  # before the stack's first frame
        if isinstance(self.frames, th.Tensor):
            # One gather of whole frames from the (slot, env)-major ring, one masked fill.
            where, frame_shape = self.frames.device, self.frames.shape[2:]
            rows = th.as_tensor((slots * self.n_envs + envs[:, None]).reshape(-1), device=where)
            stacks = self.frames.view(-1, *frame_shape).index_select(0, rows)
            stacks = stacks.view(*slots.shape, *frame_shape)
            mask = th.as_tensor(blank, device=where).view(*blank.shape, *([1] * len(frame_shape)))
            return stacks.masked_fill_(mask, 0)
        stacks = self.frames[slots, envs[:, None]]
        stacks[blank] = 0
        return stacks

    # -- pickling (checkpoints) ----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """A ring that has not wrapped yet is saved up to its last written frame."""
        state = dict(self.__dict__)
        used = int(min(self.frames_written.max(initial=0), self.frame_capacity))
        frames = self.frames[:used]
        state["frames"] = frames.cpu().numpy() if isinstance(frames, th.Tensor) else frames
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved = state["frames"]
        frames = saved  # a full ring is used as loaded, not copied: 7 GB for 1M transitions
        if len(saved) < state["frame_capacity"]:
            frames = np.zeros((state["frame_capacity"], *saved.shape[1:]), dtype=saved.dtype)
            frames[: len(saved)] = saved
        state.setdefault("frames_on_device", False)  # saved before the option existed
        if "device" in state:  # saved before `device` became a property
            state["_device"] = state.pop("device")
        # A device ring starts on the CPU: the saving device may not exist here, and SB3 sets
        # the model's device right after loading (the `device` setter moves the ring there).
        ring = th.from_numpy(frames) if state["frames_on_device"] else frames
        self.__dict__.update({**state, "frames": ring})
