"""CPU threads: PyTorch's and those of the `ale` backend's C++ games.

SB3 steps the envs and runs the network one after the other, so the two pools take turns
rather than run at once; zoo gives each every core by default (measured on a 2-core VM,
README "Throughput"). `torch_threads` and `env_threads` override the choice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch as th


def cores() -> int:
    """The cores this process may run on (a container's or taskset's limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def torch_threads(hyperparams: Mapping[str, Any]) -> int:
    chosen = hyperparams.get("torch_threads")
    return int(chosen) if chosen is not None else cores()


def env_threads(chosen: int | None, n_envs: int) -> int:
    """C++ threads stepping the games: more threads than games would only wait."""
    return max(1, min(chosen if chosen is not None else cores(), n_envs))


def apply_torch_threads(hyperparams: Mapping[str, Any]) -> int:
    threads = torch_threads(hyperparams)
    if th.get_num_threads() != threads:
        th.set_num_threads(threads)
    return threads
