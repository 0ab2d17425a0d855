"""The command line's view of the declared hyperparameters (zoo/schema.py): their flags and
the list of every key in `zoo train|tune|schedule --help`.

Imports only the schema, so that building the parsers stays light.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from zoo.schema import SCHEMAS, TOOLKIT_FIELDS, Field

# Flags every command that builds a config takes; `zoo train` adds TRAIN_FLAG_KEYS.
CONFIG_FLAG_KEYS = ("n_timesteps", "seed", "n_envs", "vec_env")
TRAIN_FLAG_KEYS = ("save_freq", "stop_at_eval_score")

_KEY_COLUMN = 28
_WIDTH = 100


def add_hyperparameter_flags(parser: argparse.ArgumentParser, keys: Sequence[str]) -> None:
    """One option per key, as its declaration says (spelling, type, metavar, choices)."""
    for key in keys:
        spec = TOOLKIT_FIELDS[key]
        flag = spec.flag
        if flag is None:
            raise ValueError(f"{key} declares no command-line flag")
        default = f"; default: {spec.default_text}" if spec.default_text else ""
        parser.add_argument(
            *flag.options,
            dest=flag.dest,
            type=flag.type,
            metavar=flag.metavar,
            choices=flag.choices,
            help=f"{spec.help} ({key}{default})",
        )


def flag_values(args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    """(options, key, value) of every hyperparameter flag the parser has, for build_config;
    a flag not given has value None."""
    return [
        (spec.flag.name, key, getattr(args, spec.flag.dest))
        for key, spec in TOOLKIT_FIELDS.items()
        if spec.flag is not None and hasattr(args, spec.flag.dest)
    ]


def given_flags(args: argparse.Namespace, allowed: Iterable[str] = ()) -> list[str]:
    """The hyperparameter flags given on the command line, except the keys in `allowed`."""
    return [
        name for name, key, value in flag_values(args) if value is not None and key not in allowed
    ]


def hyperparameter_epilog() -> str:
    """Every key with its help, what it accepts and its default, for a parser's epilog."""
    lines = [
        "hyperparameters (--set KEY=VALUE, or in a --hyperparams-file; [algos] when not all take",
        "it; defaults shown are the toolkit's, hyperparams/<algo>.yml may set others; algorithm",
        "keys default to the algorithm's own; the full table: docs/HYPERPARAMETERS.md):",
    ]
    for key, spec, algos in declarations():
        lines.extend(_key_lines(key, spec, algos))
        for entry, entry_spec in spec.check.entries.items():
            lines.extend(_key_lines(f"  {entry}", entry_spec, ()))
    return "\n".join(lines) + "\n"


def declarations() -> list[tuple[str, Field, tuple[str, ...]]]:
    """Each distinct declaration once, with the algos that take it (empty: all of them)."""
    found: dict[tuple[Any, ...], tuple[str, Field, list[str]]] = {}
    for algo, schema in SCHEMAS.items():
        for key, spec in schema.fields.items():
            same = (key, spec.help, spec.check.accepts, spec.default_words(), *spec.check.entries)
            found.setdefault(same, (key, spec, []))[2].append(algo)
    return [
        (key, spec, () if len(algos) == len(SCHEMAS) else tuple(algos))
        for key, spec, algos in found.values()
    ]


def _key_lines(key: str, spec: Field, algos: Sequence[str]) -> list[str]:
    where = f"[{', '.join(algos)}] " if algos else ""
    default = spec.default_words()
    text = f"{where}{spec.help}. {spec.check.accepts}" + (f"; default {default}" if default else "")
    name = f"  {key}"
    wrapped = textwrap.wrap(text, _WIDTH - _KEY_COLUMN)
    first = name.ljust(_KEY_COLUMN) if len(name) < _KEY_COLUMN else name + "\n" + " " * _KEY_COLUMN
    return [first + wrapped[0], *(" " * _KEY_COLUMN + line for line in wrapped[1:])]
