"""Proportional prioritized experience replay (Schaul et al. 2016) on the frame buffer.

Transition i is drawn with probability P(i) = p_i^alpha / sum_k p_k^alpha, where p_i is
|TD error| + epsilon (QR-DQN: its quantile loss + epsilon); new transitions enter at the
largest priority seen so far. The loss of a drawn transition is weighted by
w_i = (N P(i))^-beta / max_k (N P(k))^-beta, with beta annealed towards 1 over the run.

Priorities live in a sum tree (draws in O(log N)) and a min tree (the largest weight), one
leaf per (buffer index, env), leaf = index * n_envs + env. Both are numpy arrays updated a
whole batch at a time, and they pickle with the buffer, so checkpoints keep them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from zoo.replay.frame_buffer import FrameReplayBuffer


class SegmentTree:
    """A complete binary tree over `capacity` leaves whose inner nodes combine their two
    children with `combine` (np.add: sums; np.minimum: minima); node 1 is the root."""

    def __init__(self, capacity: int, combine: np.ufunc, empty: float) -> None:
        self.leaves = self.leaves_for(capacity)
        self.combine, self.empty = combine, empty
        self.nodes = np.full(2 * self.leaves, empty, dtype=np.float64)

    @staticmethod
    def leaves_for(capacity: int) -> int:
        """Leaves of a complete tree over `capacity` values: the next power of two."""
        return 1 << max(int(capacity - 1).bit_length(), 0)

    @classmethod
    def bytes_for(cls, capacity: int) -> int:
        return 2 * cls.leaves_for(capacity) * np.dtype(np.float64).itemsize

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        nodes = np.asarray(leaves, dtype=np.int64) + self.leaves
        self.nodes[nodes] = values  # a leaf given twice keeps its last value
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self.nodes[nodes] = self.combine(self.nodes[2 * nodes], self.nodes[2 * nodes + 1])
            nodes = np.unique(nodes // 2)
            if nodes[0] == 0:
                break

    def root(self) -> float:
        return float(self.nodes[1])

    def values(self, leaves: np.ndarray) -> np.ndarray:
        return self.nodes[np.asarray(leaves, dtype=np.int64) + self.leaves]

    def find_prefix_sums(self, targets: np.ndarray) -> np.ndarray:
        """Sum tree: for each target t in [0, root), the leaf where the running sum of the
        leaves passes t."""
        nodes = np.ones(len(targets), dtype=np.int64)
        remaining = np.array(targets, dtype=np.float64)
        while nodes[0] < self.leaves:
            left = self.nodes[2 * nodes]
            go_right = remaining >= left
            remaining = np.where(go_right, remaining - left, remaining)
            nodes = 2 * nodes + go_right
        return nodes - self.leaves


def priority_tree_bytes(buffer_size: int, n_envs: int) -> int:
    """Bytes of a `PrioritizedFrameReplayBuffer`'s two trees (sums and minima), beside its
    frame buffer: one leaf per transition it holds."""
    return 2 * SegmentTree.bytes_for(max(buffer_size // n_envs, 1) * n_envs)


class PrioritizedFrameReplayBuffer(FrameReplayBuffer):
    """FrameReplayBuffer that draws transitions by priority (`sample_prioritized`).

    `alpha`: how much priorities count (0: uniform); `epsilon`: added to every |TD error| so
    that no transition falls out of reach.
    """

    def __init__(
        self, *args: Any, alpha: float = 0.6, epsilon: float = 1e-6, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.alpha, self.epsilon = alpha, epsilon
        capacity = self.buffer_size * self.n_envs
        self.sums = SegmentTree(capacity, np.add, 0.0)
        self.minima = SegmentTree(capacity, np.minimum, np.inf)  # see priority_tree_bytes
        self.max_priority = 1.0

    def add(self, *args: Any, **kwargs: Any) -> None:
        leaves = self.pos * self.n_envs + np.arange(self.n_envs)
        super().add(*args, **kwargs)
        self._set_priorities(leaves, np.full(self.n_envs, self.max_priority))

    def sample_prioritized(
        self, batch_size: int, beta: float, env: VecNormalize | None = None
    ) -> tuple[ReplayBufferSamples, np.ndarray, th.Tensor]:
        """A batch drawn by priority, its leaves (for `update_priorities`) and the
        importance weights of its transitions, largest possible weight 1."""
        leaves = self._draw(batch_size)
        batch_inds, env_indices = leaves // self.n_envs, leaves % self.n_envs
        samples = self._samples_at(batch_inds, env_indices, env)
        # (N P(i))^-beta / (N P_min)^-beta: N and the total cancel out.
        weights = (self.sums.values(leaves) / self.minima.root()) ** -beta
        weights_tensor = th.as_tensor(weights[:, None], dtype=th.float32, device=self.device)
        return samples, leaves, weights_tensor

    def update_priorities(self, leaves: np.ndarray, errors: np.ndarray | th.Tensor) -> None:
        """New priorities |error| + epsilon for the transitions at `leaves`."""
        if isinstance(errors, th.Tensor):
            errors = errors.detach().cpu().numpy()
        priorities = np.abs(np.asarray(errors, dtype=np.float64).reshape(-1)) + self.epsilon
        self._set_priorities(leaves, priorities)
        self.max_priority = max(self.max_priority, float(priorities.max()))

    def _set_priorities(self, leaves: np.ndarray, priorities: np.ndarray) -> None:
        scaled = priorities**self.alpha
        self.sums.update(leaves, scaled)
        self.minima.update(leaves, scaled)

    def _draw(self, batch_size: int) -> np.ndarray:
        """Stratified: one draw in each of `batch_size` equal slices of the total priority.
        A transition whose frames were overwritten gets priority 0 and is drawn again."""
        leaves = np.zeros(batch_size, dtype=np.int64)
        missing = np.ones(batch_size, dtype=bool)
        while missing.any():
            total = self.sums.root()
            bounds = np.linspace(0.0, total, batch_size + 1)
            targets = np.random.uniform(bounds[:-1], bounds[1:])[missing]
            found = np.minimum(self.sums.find_prefix_sums(targets), self.sums.leaves - 1)
            found = self._valid_leaves(found)
            leaves[np.flatnonzero(missing)] = found
            missing[np.flatnonzero(missing)] = found < 0
        return leaves

    def _valid_leaves(self, leaves: np.ndarray) -> np.ndarray:
        """The leaves, with -1 (and priority 0) where the transition cannot be sampled."""
        batch_inds, env_indices = leaves // self.n_envs, leaves % self.n_envs
        upper = self.buffer_size if self.full else self.pos
        stored = batch_inds < upper
        valid = stored & (self.sums.values(leaves) > 0)
        valid[valid] = self.rebuildable(batch_inds[valid], env_indices[valid])
        lost = leaves[~valid & stored]
        if len(lost):
            self.sums.update(lost, np.zeros(len(lost)))
            self.minima.update(lost, np.full(len(lost), np.inf))
        return np.where(valid, leaves, -1)
