"""Epsilon under noisy nets: `noisy: true` explores by its noise instead of epsilon-greedy
(Rainbow, Hessel et al. 2018), so epsilon is 0 in training. The shipped files' epsilon
settings give way to it; one a user gives (a preset, a file, a flag, --set) that is not 0
contradicts it and is refused in one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.errors import UserError

EPSILON_KEYS = ("exploration_initial_eps", "exploration_final_eps", "exploration")
# Entries of an exploration schedule that are epsilon values (or make epsilon 1).
_EPSILON_ENTRIES = ("value", "initial", "final", "random_steps")


def without_epsilon_for_noisy(
    merged: Mapping[str, Any],
    origins: dict[str, str],
    positions: dict[str, int],
    first_user_layer: int,
) -> dict[str, Any]:
    """`merged` with epsilon 0 when `noisy` is true: the shipped epsilon keys (from layers
    before `first_user_layer`) dropped, a nonzero one from a later layer refused."""
    if not merged.get("noisy"):
        return dict(merged)
    noisy_origin = origins.get("noisy", "defaults")
    kept: dict[str, Any] = {}
    for key, value in merged.items():
        if key not in EPSILON_KEYS:
            kept[key] = value
        elif positions.get(key, -1) >= first_user_layer:
            if _gives_epsilon(value):
                raise UserError(
                    f"{origins[key]}: key {key!r}: noisy nets (noisy: true, from {noisy_origin}) "
                    "explore by their noise with epsilon 0; drop this setting or set noisy: false"
                )
            kept[key] = value
    if "exploration" not in kept:
        for key in ("exploration_initial_eps", "exploration_final_eps"):
            kept[key] = 0.0
            origins.setdefault(key, noisy_origin)
            positions[key] = positions.get(key, positions.get("noisy", 0))
    return kept


def _gives_epsilon(value: Any) -> bool:
    """Whether an epsilon key's value makes epsilon other than 0 at some step."""
    if isinstance(value, Mapping):
        numbers = [value.get(entry) for entry in _EPSILON_ENTRIES]
        numbers += [point[1] for point in value.get("points") or () if len(point) > 1]
        return any(isinstance(x, int | float) and x != 0 for x in numbers)
    return isinstance(value, int | float) and value != 0
