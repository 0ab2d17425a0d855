"""The reference of the documentation names everything a user can type: every command with all
its options (the generated command reference) and every hyperparameter of every algorithm
(the generated key table, docs/HYPERPARAMETERS.md)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from zoo.cli import build_parser
from zoo.commands import COMMANDS
from zoo.commands.common import Parser
from zoo.commands.reference import command_reference
from zoo.schema.keys import SCHEMAS

REPO = Path(__file__).resolve().parent.parent
KEY_TABLE = REPO / "docs" / "HYPERPARAMETERS.md"


def command_options() -> dict[str, set[str]]:
    """Each command's name and option strings, from its own module (not from the reference)."""
    options: dict[str, set[str]] = {}
    for command in COMMANDS:
        commands = Parser(prog="zoo").add_subparsers()
        parser = command.add_parser(commands)
        name = parser.prog.removeprefix("zoo ")
        options[name] = {
            option
            for action in parser._actions
            if not isinstance(action, argparse._HelpAction)
            for option in action.option_strings
        }
    return options


def sections(reference: str) -> dict[str, str]:
    """The reference's sections by command: "zoo train" -> its help text."""
    parts = re.split(r"^## `(zoo(?: [a-z_]+)?)`$", reference, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def missing_commands(options: Mapping[str, Iterable[str]], reference: str) -> list[str]:
    """The commands, or "command option" pairs, the reference does not show."""
    shown = sections(reference)
    missing = []
    for name, strings in options.items():
        text = shown.get(f"zoo {name}")
        if text is None:
            missing.append(name)
            continue
        missing += [f"{name} {option}" for option in sorted(strings) if option not in text]
    return missing


def table_rows(table: str) -> dict[str, list[str]]:
    """The key table's rows: key -> the algorithms cell of each row declaring it."""
    rows: dict[str, list[str]] = {}
    for match in re.finditer(r"^\| `([^`]+)` \| ([^|]+) \|", table, flags=re.M):
        rows.setdefault(match.group(1), []).append(match.group(2).strip())
    return rows


def missing_keys(schemas: Mapping[str, Iterable[str]], table: str) -> list[str]:
    """The "algo: key" pairs whose key has no row that names the algo (or says "all")."""
    rows = table_rows(table)
    missing = []
    for algo, keys in schemas.items():
        for key in keys:
            cells = rows.get(key, [])
            if not any(cell == "all" or algo in cell.split(", ") for cell in cells):
                missing.append(f"{algo}: {key}")
    return missing


def declared_keys() -> dict[str, list[str]]:
    """Every key of every algorithm's schema, with the entries of mapping keys (`a.b`)."""
    return {
        algo: [
            name
            for key, field in schema.fields.items()
            for name in (key, *(f"{key}.{entry}" for entry in field.check.entries))
        ]
        for algo, schema in SCHEMAS.items()
    }


def test_every_command_and_option_is_in_the_command_reference() -> None:
    options = command_options()
    assert len(options) == len(COMMANDS)
    assert missing_commands(options, command_reference(build_parser())) == []


def test_the_command_reference_starts_with_zoo_itself() -> None:
    assert next(iter(sections(command_reference(build_parser())))) == "zoo"


def test_every_hyperparameter_is_in_the_key_table() -> None:
    keys = declared_keys()
    assert sum(len(names) for names in keys.values()) > 100
    assert missing_keys(keys, KEY_TABLE.read_text(encoding="utf-8")) == []


def test_the_checks_name_what_is_missing() -> None:
    reference = command_reference(build_parser())
    assert missing_commands({"fly": ["--high"]}, reference) == ["fly"]
    assert missing_commands({"train": ["--no-such-option"]}, reference) == [
        "train --no-such-option"
    ]
    table = "| `gamma` | dqn, a2c | number | 0.99 |  | discount |\n"
    assert missing_keys({"ppo": ["gamma"], "dqn": ["gamma", "tau"]}, table) == [
        "ppo: gamma",
        "dqn: tau",
    ]
