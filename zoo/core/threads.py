"""CPU threads: PyTorch's and those of the `ale` backend's C++ games.

SB3 steps the envs and runs the network one after the other, so the two pools take turns:
by default each gets every core (torch its own default, the ale backend one thread per core
up to one per game). What makes or breaks a small machine is how idle threads wait. PyTorch's
OpenMP threads spin after each operation by default; while they spin, the game threads, or
any other process, lose the core, and once another process takes a core the spinning threads
wait on each other: on a 2-core VM with one busy core, A2C trained 5 times slower with 2
torch threads than with 1. zoo makes them sleep instead (OMP_WAIT_POLICY=PASSIVE, unless
the variable is set), which removed that collapse and cost nothing when the machine was
otherwise idle (docs/guide/performance.md). `torch_threads` and `env_threads` override the counts.
"""

from __future__ import annotations

import os


def prefer_sleeping_openmp_threads() -> None:
    """Must run before PyTorch is imported: OpenMP reads the variable when it loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cores() -> int:
    """The cores this process may run on (a container's or taskset's limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def env_threads(chosen: int | None, n_envs: int) -> int:
    """C++ threads stepping the games: more threads than games would only wait."""
    return max(1, min(chosen if chosen is not None else cores(), n_envs))


def apply_torch_threads(chosen: int | None) -> int:
    """Set the config's `torch_threads` (None keeps PyTorch's default, one per physical
    core); returns the count in use."""
    import torch as th

    if chosen is not None and th.get_num_threads() != chosen:
        th.set_num_threads(chosen)
    return th.get_num_threads()
