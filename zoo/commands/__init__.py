"""One module per `zoo` command. Each has `add_parser(subparsers)`, which declares its options
and returns its parser, and `run(args) -> int`, which does the work and gives the exit code.

The modules import only argparse and the torch-free names (schema, names) at the top, so
that `zoo --help` is quick; what a command needs to run is imported inside `run`.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from zoo.commands import benchmark, enjoy, envs, plot, report, schedule, train, tune
from zoo.commands.common import Parser, Subparsers


class Command(Protocol):
    def add_parser(self, commands: Subparsers[Parser]) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...


# In the order `zoo --help` lists them.
COMMANDS: tuple[Command, ...] = (train, schedule, enjoy, report, plot, tune, benchmark, envs)
