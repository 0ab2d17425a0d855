"""Schedules as data: YAML specs -> functions of the global step (or episode) count.

A spec is a number (constant) or a mapping with `type` and its parameters:

    {type: constant, value: 0.05}
    {type: linear, initial: 1.0, final: 0.1, steps: 1000000}      # or fraction: 0.1 of the run
    {type: exponential, initial: 1.0, final: 0.05, tau: 250000}   # within 1% of final after 5 tau
    {type: piecewise, points: [[0, 1.0], [1e6, 0.1], [2e6, 0.01]]}
    {type: step, initial: 7e-4, factor: 0.5, every: 1000000, final: 1e-5}

Exploration schedules may also start with a purely random phase (`random_steps: R`, epsilon 1
until R; decays start at R) and count episodes instead of agent steps (`unit: episodes`).
Values depend only on the global count, so a resumed run continues a schedule where it was.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Unit = Literal["steps", "episodes"]

_PARAMETERS: Mapping[str, tuple[set[str], set[str]]] = {
    # type: (required, optional) besides `type`, `unit` and `random_steps`
    "constant": ({"value"}, set()),
    "linear": ({"initial", "final"}, {"steps", "fraction"}),
    "exponential": ({"initial", "final", "tau"}, set()),
    "piecewise": ({"points"}, set()),
    "step": ({"initial", "factor", "every"}, {"final"}),
}


class ScheduleError(ValueError):
    """A schedule spec that cannot be built; the message names the problem."""


@dataclass(frozen=True)
class Schedule:
    """value(t) for t in agent steps (or episodes, see `unit`)."""

    kind: str
    unit: Unit
    random_steps: float
    initial: float = 0.0
    final: float = 0.0
    length: float = 0.0  # linear: decay length; exponential: tau; step: interval
    factor: float = 1.0
    points: tuple[tuple[float, float], ...] = ()

    def value(self, t: float) -> float:
        if t < self.random_steps:
            return 1.0  # purely random actions
        t -= self.random_steps
        if self.kind == "constant":
            return self.initial
        if self.kind == "linear":
            progress = min(1.0, t / self.length) if self.length > 0 else 1.0
            return self.initial + (self.final - self.initial) * progress
        if self.kind == "exponential":
            return self.final + (self.initial - self.final) * math.exp(-t / self.length)
        if self.kind == "step":
            return max(self.final, self.initial * self.factor ** math.floor(t / self.length))
        return self._piecewise(t)

    def _piecewise(self, t: float) -> float:
        steps = [step for step, _ in self.points]
        index = bisect.bisect_right(steps, t)
        if index == 0:
            return self.points[0][1]
        if index == len(self.points):
            return self.points[-1][1]
        (t0, v0), (t1, v1) = self.points[index - 1], self.points[index]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    @property
    def settled_at(self) -> float | None:
        """Where the decay is (nearly) over: the 5-tau point, or the end of a linear decay."""
        if self.kind == "exponential":
            return self.random_steps + 5 * self.length
        if self.kind == "linear":
            return self.random_steps + self.length
        return None


def build_schedule(
    spec: Any,
    total_steps: int,
    *,
    exploration: bool = False,
    rising: bool = False,
) -> Schedule:
    """Build a schedule from a YAML spec; `total_steps` resolves `fraction`. Schedules decay
    (final <= initial) unless `rising` (a value annealed upwards, as prioritized replay's
    beta towards 1), where linear and exponential ones go up instead."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        if not math.isfinite(spec):  # NaN passes every range check after this
            raise ScheduleError(f"must be a finite number, got {spec!r}")
        return Schedule(kind="constant", unit="steps", random_steps=0, initial=float(spec))
    if not isinstance(spec, Mapping):
        raise ScheduleError(f"expected a number or a mapping with a type, got {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _PARAMETERS:
        raise ScheduleError(
            f"unknown schedule type {kind!r}; choose one of {', '.join(_PARAMETERS)}"
        )
    required, optional = _PARAMETERS[kind]
    extra = {"unit", "random_steps"} if exploration else set()
    _check_keys(kind, spec, required, optional | extra)
    unit = spec.get("unit", "steps")
    if unit not in ("steps", "episodes"):
        raise ScheduleError(f"unit must be steps or episodes, got {unit!r}")
    random_steps = _number(spec, "random_steps", 0.0, low=0.0)
    common: dict[str, Any] = {"kind": kind, "unit": unit, "random_steps": random_steps}
    if kind == "constant":
        return Schedule(**common, initial=_number(spec, "value"))
    if kind == "piecewise":
        return Schedule(**common, points=_points(spec.get("points")))
    initial = _number(spec, "initial")
    if kind == "step":
        factor = _number(spec, "factor")
        if not 0 < factor <= 1:
            raise ScheduleError(f"step: factor must be in (0, 1], got {factor}")
        every = _number(spec, "every")
        if every <= 0:
            raise ScheduleError(f"step: every must be > 0, got {every}")
        final = _number(spec, "final", 0.0)
        if rising:
            raise ScheduleError("step schedules only decay; use linear or exponential")
        _check_decay(kind, initial, final)
        return Schedule(**common, initial=initial, final=final, factor=factor, length=every)
    final = _number(spec, "final")
    if rising:
        _check_rise(kind, initial, final)
    else:
        _check_decay(kind, initial, final)
    if kind == "exponential":
        tau = _number(spec, "tau")
        if tau <= 0:
            raise ScheduleError(f"exponential: tau must be > 0, got {tau}")
        return Schedule(**common, initial=initial, final=final, length=tau)
    return Schedule(
        **common, initial=initial, final=final, length=_linear_length(spec, total_steps)
    )


def _check_keys(kind: str, spec: Mapping[str, Any], required: set[str], optional: set[str]) -> None:
    missing = sorted(required - set(spec))
    if missing:
        raise ScheduleError(f"{kind} schedule needs {', '.join(missing)}")
    unknown = sorted(set(spec) - required - optional - {"type"})
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise ScheduleError(
            f"{kind} schedule does not take {', '.join(unknown)} (it takes {allowed})"
        )


def _number(
    spec: Mapping[str, Any], key: str, default: float | None = None, low: float | None = None
) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScheduleError(f"{key} must be a number, got {value!r}")
    if low is not None and value < low:
        raise ScheduleError(f"{key} must be >= {low:g}, got {value}")
    return float(value)


def _check_decay(kind: str, initial: float, final: float) -> None:
    if final > initial:
        raise ScheduleError(f"{kind} decay: final ({final:g}) is larger than initial ({initial:g})")


def _check_rise(kind: str, initial: float, final: float) -> None:
    if final < initial:
        raise ScheduleError(f"{kind} rise: final ({final:g}) is smaller than initial ({initial:g})")


def _linear_length(spec: Mapping[str, Any], total_steps: int) -> float:
    if "steps" in spec and "fraction" in spec:
        raise ScheduleError("linear schedule takes steps or fraction, not both")
    if "steps" in spec:
        return _number(spec, "steps", low=0.0)
    fraction = _number(spec, "fraction", 1.0, low=0.0)
    if fraction > 1:
        raise ScheduleError(f"fraction must be <= 1, got {fraction}")
    return fraction * total_steps


def _points(raw: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list) or not raw:
        raise ScheduleError("piecewise: points must be a non-empty list of [step, value] pairs")
    points = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 2:
            raise ScheduleError(f"piecewise: each point is [step, value], got {item!r}")
        step, value = (_number({"v": x}, "v") for x in item)
        points.append((step, value))
    steps = [step for step, _ in points]
    if steps != sorted(steps) or len(set(steps)) != len(steps):
        raise ScheduleError(f"piecewise: steps must increase strictly, got {steps}")
    return tuple(points)
