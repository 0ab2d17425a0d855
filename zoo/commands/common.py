"""What every command shares: one-line errors, the --log-dir type and the printer."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from zoo.core.errors import one_line

EXIT_USER_ERROR = 2


def log_dir(text: str) -> Path:
    """--log-dir: a folder name; an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a folder name (e.g. logs), not an empty string")
    return Path(text)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USER_ERROR, f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)\n"
        )


# What each command's `add_parser` is given: `zoo`'s table of sub-commands.
Subparsers = argparse._SubParsersAction


def printer(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say
