"""Search spaces of `zoo tune` as data: hyperparams/search_spaces.yml, overridable per entry.

An entry draws one hyperparameter (`{int: [1, 10]}`, `{float: [...], log: true}`,
`{choices: [...]}`, `{value: X}`) or a schedule by parts (type, initial, final or
final_fraction, length, random_steps). Numbers with `scale: run` are fractions of the run, so
one space fits trials of any length and the best trial scales to the full run.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from zoo.config.layers import shipped_hyperparams_file
from zoo.core.errors import UserError
from zoo.core.yamlio import read_yaml_file
from zoo.schema.fields import FieldError
from zoo.schema.keys import SCHEDULE_KEYS, SCHEMAS

DRAW_KINDS = ("int", "float", "choices", "value")
DRAW_OPTIONS = ("log", "step", "scale", "trial_only")
SCHEDULE_TYPES = ("constant", "linear", "exponential")
SCHEDULE_PARTS = ("type", "initial", "final", "final_fraction", "length", "random_steps")
# zoo tune sets these for every trial; a search over them would be overwritten.
TUNE_CONTROLLED = ("n_timesteps", "seed", "eval_freq", "save_freq", "keep_checkpoints")


@dataclass(frozen=True)
class Draw:
    """How one number or choice is drawn; `name` is its Optuna parameter name."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None
    scale_run: bool = False
    trial_only: bool = False

    @property
    def fixed(self) -> bool:
        return self.kind == "value"

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        if self.kind == "choices":
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.value

    def resolve(self, raw: Any, run_steps: int) -> Any:
        """The config value of a drawn `raw` value: fractions of the run become steps."""
        if self.scale_run:
            return round(float(raw) * run_steps)
        return raw


@dataclass(frozen=True)
class Entry:
    """One hyperparameter of the space: a single draw, or a schedule drawn by parts."""

    key: str
    draw: Draw | None = None
    parts: Mapping[str, Draw] | None = None

    @property
    def trial_only(self) -> bool:
        draws = [self.draw] if self.draw is not None else list((self.parts or {}).values())
        return any(d.trial_only for d in draws)


Pick = Callable[[Draw], Any]


@dataclass(frozen=True)
class SearchSpace:
    algo: str
    entries: tuple[Entry, ...]

    def values(self, pick: Pick, run_steps: int, for_trial: bool = True) -> dict[str, Any]:
        """Hyperparameters for a run of `run_steps` steps, each drawn value got from `pick`
        (a trial's suggestion, or a finished trial's parameters). `for_trial=False` leaves
        out the trial-only entries (the values best.yml carries)."""
        values: dict[str, Any] = {}
        for entry in self.entries:
            if not for_trial and entry.trial_only:
                continue
            if entry.draw is not None:
                values[entry.key] = entry.draw.resolve(pick(entry.draw), run_steps)
            else:
                values[entry.key] = _schedule(entry, pick, run_steps)
        return values

    def suggest(self, trial: optuna.Trial, run_steps: int) -> dict[str, Any]:
        return self.values(lambda draw: draw.suggest(trial), run_steps)

    def from_params(
        self, params: Mapping[str, Any], run_steps: int, for_trial: bool = True
    ) -> dict[str, Any]:
        """The hyperparameters a finished trial with these Optuna `params` used."""

        def pick(draw: Draw) -> Any:
            return draw.value if draw.fixed else params[draw.name]

        return self.values(pick, run_steps, for_trial)


def _schedule(entry: Entry, pick: Pick, run_steps: int) -> dict[str, Any]:
    parts = entry.parts or {}

    def part(name: str) -> Any:
        return parts[name].resolve(pick(parts[name]), run_steps)

    kind = str(part("type"))
    spec: dict[str, Any] = {"type": kind}
    initial = float(part("initial"))
    if "random_steps" in parts:
        spec["random_steps"] = part("random_steps")
    if kind == "constant":
        spec["value"] = initial
        return spec
    final = float(part("final")) if "final" in parts else initial * float(part("final_fraction"))
    length = max(1, int(part("length")))
    spec.update(initial=initial, final=min(final, initial))
    if kind == "linear":
        spec["steps"] = length
    else:
        spec["tau"] = max(1.0, length / 5)  # within 1% of final after 5 tau
    return spec


def load_search_space(algo: str, user_file: Path | None = None) -> SearchSpace:
    """The shipped space of `algo`, with the entries of `user_file` replacing its own."""
    shipped_path = shipped_hyperparams_file("search_spaces")
    raw: dict[str, tuple[str, Any]] = {
        key: (f"{shipped_path}, {algo}.{key}", value)
        for key, value in _section(shipped_path, algo).items()
    }
    origin = str(shipped_path)
    if user_file is not None:
        origin = f"{shipped_path} + {user_file}"
        for key, value in _section(user_file, algo).items():
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = (f"{user_file}, {algo}.{key}", value)
    entries = tuple(_entry(algo, key, where, value) for key, (where, value) in raw.items())
    if not any(_drawn(entry) for entry in entries):
        raise UserError(
            f"{origin}: the {algo} search space draws nothing; add an entry such as n_steps: {{int: [1, 10]}}"
        )
    return SearchSpace(algo=algo, entries=entries)


def _drawn(entry: Entry) -> bool:
    draws = [entry.draw] if entry.draw is not None else list((entry.parts or {}).values())
    return any(not d.fixed for d in draws)


def _section(path: Path, algo: str) -> dict[str, Any]:
    data = read_yaml_file(path, what="search space file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected sections named after algos ({', '.join(SCHEMAS)})")
    unknown = [str(name) for name in data if name not in SCHEMAS]
    if unknown:
        raise UserError(
            f"{path}: section {unknown[0]!r} is not an algo; sections are {', '.join(SCHEMAS)}"
        )
    section = data.get(algo) or {}
    if not isinstance(section, dict):
        raise UserError(f"{path}, {algo}: expected a mapping of hyperparameters to draws")
    return section


def _entry(algo: str, key: Any, where: str, value: Any) -> Entry:
    fields = SCHEMAS[algo].fields
    if key not in fields:
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{where}: {key!r} is not a {algo} hyperparameter{hint}")
    if key in TUNE_CONTROLLED:
        raise UserError(
            f"{where}: zoo tune sets {key} for every trial (--trial-steps, --seed, "
            "--evals-per-trial); remove it from the search space"
        )
    if not isinstance(value, dict):
        raise UserError(
            f"{where}: expected a mapping such as {{int: [1, 10]}} or {{value: 3}}, got {value!r}"
        )
    if key in SCHEDULE_KEYS and not any(kind in value for kind in DRAW_KINDS):
        return Entry(key=key, parts=_schedule_parts(algo, key, where, value))
    draw = _draw(key, where, value)
    _check_against_field(algo, key, where, draw)
    return Entry(key=key, draw=draw)


def _draw(name: str, where: str, spec: Mapping[str, Any]) -> Draw:
    unknown = [k for k in spec if k not in (*DRAW_KINDS, *DRAW_OPTIONS)]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), [*DRAW_KINDS, *DRAW_OPTIONS], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(
            f"{where}: unknown key {unknown[0]!r}{hint}; use one of {', '.join(DRAW_KINDS)} "
            f"with {', '.join(DRAW_OPTIONS)}"
        )
    kinds = [k for k in DRAW_KINDS if k in spec]
    if len(kinds) != 1:
        raise UserError(
            f"{where}: give exactly one of {', '.join(DRAW_KINDS)}"
            + (f", not {' and '.join(kinds)}" if kinds else "")
        )
    kind = kinds[0]
    scale = spec.get("scale")
    if scale not in (None, "run"):
        raise UserError(f"{where}: scale must be run (a fraction of the run), got {scale!r}")
    trial_only = spec.get("trial_only", False)
    if not isinstance(trial_only, bool):
        raise UserError(f"{where}: trial_only must be true or false, got {trial_only!r}")
    common: dict[str, Any] = {"name": name, "kind": kind, "scale_run": scale == "run"}
    common["trial_only"] = trial_only
    if kind == "value":
        _refuse_options(where, spec, ("log", "step"), "a fixed value")
        value = spec["value"]
        if scale == "run":
            _check_fraction(where, value)
        return Draw(**common, value=value)
    if kind == "choices":
        _refuse_options(where, spec, ("log", "step", "scale"), "choices")
        return Draw(**common, choices=_choices(where, spec["choices"]))
    low, high = _bounds(where, kind, spec[kind])
    log, step = _log_and_step(where, kind, spec, low)
    if scale == "run":
        _check_fraction(where, low)
        _check_fraction(where, high)
    return Draw(**common, low=low, high=high, log=log, step=step)


def _bounds(where: str, kind: str, raw: Any) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2 or not all(_is_number(x) for x in raw):
        raise UserError(f"{where}: {kind} needs [LOW, HIGH], two numbers, got {raw!r}")
    low, high = float(raw[0]), float(raw[1])
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise UserError(f"{where}: int bounds must be whole numbers, got {raw!r}")
    if low > high:
        raise UserError(f"{where}: bad range [{raw[0]}, {raw[1]}]: LOW is above HIGH")
    return low, high


def _log_and_step(
    where: str, kind: str, spec: Mapping[str, Any], low: float
) -> tuple[bool, float | None]:
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        if not _is_number(step) or step <= 0 or (kind == "int" and not float(step).is_integer()):
            raise UserError(
                f"{where}: step must be a positive {'integer' if kind == 'int' else 'number'}, got {step!r}"
            )
        if log:
            raise UserError(
                f"{where}: log and step cannot go together (Optuna draws one or the other)"
            )
    if log and low <= 0:
        raise UserError(f"{where}: bad range: a log scale needs LOW > 0, got {low:g}")
    return log, None if step is None else float(step)


def _choices(where: str, raw: Any) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{where}: choices needs a non-empty list, got {raw!r}")
    for choice in raw:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise UserError(
                f"{where}: a choice must be a number, string, true/false or null, got {choice!r}"
            )
    if len(set(map(repr, raw))) != len(raw):
        raise UserError(f"{where}: choices repeat a value: {raw!r}")
    return tuple(raw)


def _refuse_options(
    where: str, spec: Mapping[str, Any], options: tuple[str, ...], what: str
) -> None:
    given = [option for option in options if option in spec]
    if given:
        raise UserError(f"{where}: {given[0]} does not apply to {what}")


def _check_fraction(where: str, value: Any) -> None:
    if not _is_number(value) or not 0 <= float(value) <= 1:
        raise UserError(
            f"{where}: with scale: run the number is a fraction of the run, within [0, 1]; got {value!r}"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_against_field(algo: str, key: str, where: str, draw: Draw) -> None:
    """Every value the draw can give must be one the hyperparameter accepts."""
    if draw.scale_run:
        return  # a number of steps, known once the run length is
    check = SCHEMAS[algo].fields[key].check
    if draw.kind == "value":
        candidates: list[tuple[str, Any]] = [("value", draw.value)]
    elif draw.kind == "choices":
        candidates = [("choice", choice) for choice in draw.choices]
    else:
        as_type = int if draw.kind == "int" else float
        candidates = [("LOW", as_type(draw.low)), ("HIGH", as_type(draw.high))]
    for label, candidate in candidates:
        try:
            check(candidate)
        except FieldError as error:
            raise UserError(f"{where}: bad range: {label} {candidate!r}: {error}") from None


def _schedule_parts(algo: str, key: str, where: str, spec: Mapping[str, Any]) -> dict[str, Draw]:
    unknown = [part for part in spec if part not in SCHEDULE_PARTS]
    if unknown:
        raise UserError(
            f"{where}: unknown part {unknown[0]!r}; a schedule is drawn by {', '.join(SCHEDULE_PARTS)}"
        )
    parts: dict[str, Draw] = {}
    for name, value in spec.items():
        part_where = f"{where}.{name}"
        if not isinstance(value, dict):
            raise UserError(f"{part_where}: expected a mapping such as {{value: {value!r}}}")
        parts[name] = _draw(f"{key}.{name}", part_where, value)
    _check_schedule_parts(key, where, parts)
    return parts


def _check_schedule_parts(key: str, where: str, parts: Mapping[str, Draw]) -> None:
    for required in ("type", "initial"):
        if required not in parts:
            raise UserError(f"{where}: a schedule needs its {required} part")
    type_draw = parts["type"]
    types = type_draw.choices if type_draw.kind == "choices" else (type_draw.value,)
    bad = [t for t in types if t not in SCHEDULE_TYPES]
    if type_draw.kind not in ("choices", "value") or bad:
        raise UserError(
            f"{where}.type: choose among {', '.join(SCHEDULE_TYPES)}, got {bad or type_draw.kind}"
        )
    decays = any(t != "constant" for t in types)
    if decays and "length" not in parts:
        raise UserError(f"{where}: linear and exponential schedules need a length part")
    if decays and "final" not in parts and "final_fraction" not in parts:
        raise UserError(f"{where}: linear and exponential schedules need final or final_fraction")
    if "final" in parts and "final_fraction" in parts:
        raise UserError(f"{where}: give final or final_fraction, not both")
    if "random_steps" in parts and key != "exploration":
        raise UserError(f"{where}.random_steps: only the exploration schedule has a random phase")
    high = 1.0 if key in ("exploration", "clip_range") else math.inf
    for name in ("initial", "final"):
        if name in parts:
            _check_part_range(f"{where}.{name}", parts[name], 0.0, high)
    if "final_fraction" in parts:
        _check_part_range(f"{where}.final_fraction", parts["final_fraction"], 0.0, 1.0)
    for name in ("type", "initial", "final", "final_fraction"):
        if name in parts and parts[name].scale_run:
            raise UserError(f"{where}.{name}: scale: run is for lengths and random_steps")


def _check_part_range(where: str, draw: Draw, low: float, high: float) -> None:
    if draw.kind == "choices":
        values = list(draw.choices)
    elif draw.kind == "value":
        values = [draw.value]
    else:
        values = [draw.low, draw.high]
    for value in values:
        if not _is_number(value) or not low <= float(value) <= high:
            raise UserError(f"{where}: bad range: {value!r} is outside [{low:g}, {high:g}]")
