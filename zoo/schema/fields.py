"""How a hyperparameter is declared: `Field` (checker, help, defaults, flag, former names),
the checkers a field is built from, and `Schema`, the keys of one algorithm.

A check returns its value normalised (an integral float such as `1e7` becomes an int); a bad
value raises `FieldError` with a message that zoo/config/ prefixes with the file, section and
key it came from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.schema.schedules import ScheduleError, build_schedule


class FieldError(ValueError):
    """A value that does not fit its field; the message says what was expected."""


@dataclass(frozen=True)
class Check:
    """A value checker and what it accepts, in words, for --help and the key table."""

    function: Callable[[Any], Any]
    accepts: str
    # The entries of a nested mapping (policy_kwargs), each a key of its own.
    entries: Mapping[str, Field] = field(default_factory=dict)
    is_schedule: bool = False

    def __call__(self, value: Any) -> Any:
        return self.function(value)


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


# A default that a declaration leaves out (None is a default: "zoo chooses", "never").
NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class Flag:
    """A command-line option that sets one key, e.g. `-n/--timesteps` for n_timesteps."""

    options: tuple[str, ...]
    type: Callable[[str], Any] = int
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        """The options as error messages name them: `-n/--timesteps`."""
        return "/".join(self.options)

    @property
    def dest(self) -> str:
        """argparse's attribute for the value: the first long option, as a name."""
        long = next(option for option in self.options if option.startswith("--"))
        return long[2:].replace("-", "_")


@dataclass(frozen=True)
class Field:
    """One hyperparameter, declared once: checker, help and, where it has them, defaults,
    old names and a command-line flag."""

    check: Check
    help: str
    default: Any = NO_DEFAULT  # every resolved config carries it
    atari: Any = NO_DEFAULT  # for Atari games, pixels and RAM
    atari_pixels: Any = NO_DEFAULT  # for Atari pixel games
    default_text: str = ""  # a default chosen when the config is built, in words
    flag: Flag | None = None
    renamed_from: tuple[str, ...] = ()  # old names, still accepted with a note

    def default_for(self, env_kind: str) -> Any:
        """The declared default for an env of `env_kind` (EnvSpec.kind), or NO_DEFAULT."""
        if env_kind == "atari" and self.atari_pixels is not NO_DEFAULT:
            return self.atari_pixels
        if env_kind != "other" and self.atari is not NO_DEFAULT:
            return self.atari
        return self.default

    def default_words(self) -> str:
        """The declared defaults as --help and the key table show them ("" if none)."""
        if self.default_text:
            return self.default_text
        parts = [] if self.default is NO_DEFAULT else [_yaml_text(self.default)]
        for label, value in (("Atari", self.atari), ("Atari pixels", self.atari_pixels)):
            if value is not NO_DEFAULT:
                parts.append(f"{label}: {_yaml_text(value)}")
        return "; ".join(parts)


def _yaml_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


# No count in a config comes near this (10^12 agent steps are years of emulation): a larger
# one is a slip such as 1e30, and would overflow the int64 counters of numpy and PyTorch.
MAX_INTEGER = 10**12


def integer(low: int | None = None, high: int | None = None, allow: tuple[int, ...] = ()) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(f"expected an integer, got {_describe(value)}")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise FieldError(f"expected an integer, got {value!r}")
        number = int(value)
        if number in allow:
            return number
        if (low is not None and number < low) or (high is not None and number > high):
            raise FieldError(f"must be {_range_text(low, high, allow)}, got {number}")
        if number > MAX_INTEGER:
            raise FieldError(f"must be at most 1e12 (more than any run needs), got {number:.3g}")
        return number

    return Check(check, f"integer {_range_text(low, high, allow)}".strip())


def number(
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    optional: bool = False,
) -> Check:
    lower = None if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
    upper = None if high is None else f"<= {high:g}"
    bounds = " and ".join(b for b in (lower, upper) if b)

    def check(value: Any) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(f"expected a number, got {_describe(value)}")
        result = float(value)
        too_low = low is not None and (result <= low if low_open else result < low)
        too_high = high is not None and result > high
        if not math.isfinite(result) or too_low or too_high:
            raise FieldError(f"must be a finite number {bounds}, got {value!r}".replace("  ", " "))
        return result

    return Check(check, f"number {bounds}".strip() + (", or null" if optional else ""))


def _range_text(low: int | None, high: int | None, allow: tuple[int, ...]) -> str:
    parts = []
    if low is not None:
        parts.append(f">= {low}")
    if high is not None:
        parts.append(f"<= {high}")
    text = " and ".join(parts)
    return f"{text} (or {', '.join(map(str, allow))})" if allow else text


def schedule(
    low: float,
    high: float | None = None,
    exploration: bool = False,
    rising: bool = False,
    start_above_low: bool = False,
) -> Check:
    """A number or a schedule spec (see zoo/schema/schedules.py) whose values lie in [low, high].

    A constant learning rate must be > 0; a decay may end at 0. `rising`: the schedule goes
    up instead (prioritized replay's beta, which may be 0: no importance correction).
    `start_above_low`: the step-0 value must be > low too (SB3 refuses a clip_range_vf of 0).
    """

    def check(value: Any) -> Any:
        try:
            built = build_schedule(value, total_steps=1, exploration=exploration, rising=rising)
        except ScheduleError as error:
            raise FieldError(str(error)) from None
        if built.kind == "constant" and not (exploration or rising) and built.initial <= low:
            raise FieldError(f"must be > {low:g}, got {built.initial:g}")
        if start_above_low and built.value(0) <= low:
            raise FieldError(f"must start above {low:g}, got {built.value(0):g} at step 0")
        if built.kind == "constant":
            values = [built.initial]
        elif built.kind == "piecewise":
            values = [v for _, v in built.points]
        else:
            values = [built.initial, built.final]
        out_of_range = [v for v in values if v < low or (high is not None and v > high)]
        if out_of_range:
            upper = f" and <= {high:g}" if high is not None else ""
            raise FieldError(f"schedule values must be >= {low:g}{upper}, got {out_of_range[0]:g}")
        return dict(value) if isinstance(value, dict) else float(value)

    within = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
    return Check(check, f"number or schedule, values {within}", is_schedule=True)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"expected true or false, got {_describe(value)}")
    return value


boolean = Check(_boolean, "true or false")


def boolean_or(word: str) -> Check:
    """true, false or `word` (e.g. auto: zoo decides)."""

    def check(value: Any) -> bool | str:
        if isinstance(value, bool) or value == word:
            return value
        raise FieldError(f"expected true, false or {word}, got {_describe(value)}")

    return Check(check, f"true, false or {word}")


def choice(options: tuple[str, ...] | Mapping[str, Any], optional: bool = False) -> Check:
    names = tuple(options)

    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if value not in names:
            raise FieldError(f"expected one of {', '.join(names)}, got {value!r}")
        return str(value)

    return Check(check, f"one of {', '.join(names)}" + (", or null" if optional else ""))


def optional(inner: Check) -> Check:
    """`inner`, or null (zoo chooses)."""

    def check_optional(value: Any) -> Any:
        return None if value is None else inner(value)

    return Check(check_optional, f"{inner.accepts}, or null", is_schedule=inner.is_schedule)


# `sb3` names the standard SB3 stack in this process, i.e. dummy.
VEC_ENV_ALIASES: Mapping[str, str] = {
    "ale": "ale",
    "sb3": "dummy",
    "dummy": "dummy",
    "subproc": "subproc",
}


def _vec_env(value: Any) -> str:
    if value not in VEC_ENV_ALIASES:
        raise FieldError(f"expected one of {', '.join(VEC_ENV_ALIASES)}, got {value!r}")
    return VEC_ENV_ALIASES[value]


vec_env = Check(_vec_env, f"one of {', '.join(VEC_ENV_ALIASES)}")


def _int_list(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise FieldError(
            f"expected a non-empty list of layer sizes such as [64, 64], got {_describe(value)}"
        )
    return [integer(low=1)(item) for item in value]


def _net_arch(value: Any) -> list[int] | dict[str, list[int]]:
    """A list of layer sizes, or for actor-critic `{pi: [...], vf: [...]}`."""
    if isinstance(value, dict):
        unknown = set(value) - {"pi", "vf"}
        if unknown:
            raise FieldError(f"net_arch mapping takes keys pi and vf, got {sorted(unknown)}")
        return {key: _int_list(sizes) for key, sizes in value.items()}
    return _int_list(value)


net_arch = Check(_net_arch, "list of layer sizes, or {pi: [...], vf: [...]}")


def _train_freq(value: Any) -> int | list[Any]:
    """`4` (steps) or `[4, step]` / `[1, episode]` as SB3 accepts."""
    if isinstance(value, list):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise FieldError(f"expected an integer or [N, step|episode], got {value!r}")
        return [integer(low=1)(value[0]), value[1]]
    return integer(low=1)(value)


train_freq = Check(_train_freq, "integer >= 1, or [N, step|episode]")


def _scalar_mapping(value: Any) -> dict[str, Any]:
    """A mapping of names to plain YAML scalars (numbers, booleans, strings, lists of them)."""
    if not isinstance(value, dict):
        raise FieldError(f"expected a mapping, got {_describe(value)}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise FieldError(f"keys must be names, got {key!r}")
        if isinstance(item, dict):
            _scalar_mapping(item)
    return dict(value)


scalar_mapping = Check(_scalar_mapping, "mapping")


def nested(fields: Mapping[str, Field]) -> Check:
    """A mapping with its own schema (policy_kwargs); unknown keys are errors."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise FieldError(f"expected a mapping, got {_describe(value)}")
        result: dict[str, Any] = {}
        for key, item in value.items():
            if key not in fields:
                raise FieldError(f"unknown entry {key!r}; valid entries: {', '.join(fields)}")
            if item is None:
                result[key] = None  # null means "SB3's default"
                continue
            try:
                result[key] = fields[key].check(item)
            except FieldError as error:
                raise FieldError(f"{key}: {error}") from None
        return result

    return Check(check, "mapping of the entries below", entries=fields)


@dataclass(frozen=True)
class Schema:
    """All keys one algorithm accepts: toolkit keys (env, run) and algorithm keyword arguments."""

    toolkit: Mapping[str, Field]
    algorithm: Mapping[str, Field]
    # Keys other algorithms take that make no sense here, with the reason.
    not_applicable: Mapping[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> dict[str, Field]:
        return {**self.toolkit, **self.algorithm}
