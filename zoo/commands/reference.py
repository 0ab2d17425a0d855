"""The command reference of the documentation: every command's `--help`, as markdown.

Built, when the site is built, from the very parser `zoo` runs (the caller passes
`zoo.cli.build_parser()`: the commands sit below the `zoo` entry point, so they do not import
it), so the reference cannot drift from the command line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

# The help is wrapped at a fixed width, whatever terminal builds the site.
HELP_WIDTH = 100

_HEADER = """\
# Command reference

Every `zoo` command's `--help`, generated from the parsers `zoo` itself builds
(`zoo/commands/reference.py`), so it always matches the installed version. The hyperparameter
keys the epilogs list are tabulated, with their types, ranges and defaults, in the
[hyperparameter table](../HYPERPARAMETERS.md).
"""


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """`zoo`'s parser under "zoo", then each command's under its name, in `zoo --help` order."""
    parsers: dict[str, argparse.ArgumentParser] = {"zoo": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                if all(command is not seen for seen in parsers.values()):  # aliases once
                    parsers[name] = command
    return parsers


def command_reference(parser: argparse.ArgumentParser) -> str:
    """The markdown page of `parser` (`zoo.cli.build_parser()`): one section per command with its
    `--help` verbatim."""
    sections = [_HEADER]
    with _terminal_width(HELP_WIDTH):
        for name, command in command_parsers(parser).items():
            title = name if name == "zoo" else f"zoo {name}"
            sections.append(f"\n## `{title}`\n\n```text\n{command.format_help().rstrip()}\n```\n")
    return "".join(sections)


@contextmanager
def _terminal_width(columns: int) -> Iterator[None]:
    """argparse wraps help at $COLUMNS (read when the help is formatted)."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before
