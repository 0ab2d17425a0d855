"""The command line's view of the declared hyperparameters (zoo/schema/keys.py): the list of every
key in `zoo train|tune|schedule --help` (their flags: zoo/commands/options.py).

Imports only the schema, so that building the parsers stays light.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from zoo.schema.fields import Field
from zoo.schema.keys import SCHEMAS

_KEY_COLUMN = 28
_WIDTH = 100


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
