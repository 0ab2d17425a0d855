"""The `zoo` command: one sub-command per verb, each in zoo/commands/. User mistakes become
one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zoo import __version__
from zoo.commands import COMMANDS
from zoo.commands.common import EXIT_USER_ERROR, Parser
from zoo.core.errors import one_line


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="zoo",
        description="Train reinforcement-learning agents on Atari games with Stable-Baselines3.",
        epilog="Run `zoo COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(commands).set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from zoo.core.errors import UserError
    from zoo.core.threads import prefer_sleeping_openmp_threads

    prefer_sleeping_openmp_threads()  # before any command imports PyTorch

    args = build_parser().parse_args(argv)
    # After parsing: interrupts imports SB3, which `zoo --help` does without.
    from zoo.core.interrupts import exit_code_of, own_stop_signals

    own_stop_signals()
    try:
        if getattr(args, "gym_packages", None):
            from zoo.envs.gym_packages import import_gym_packages

            import_gym_packages(args.gym_packages)  # before any env id is resolved
        return int(args.handler(args))
    except UserError as error:
        print(f"zoo: error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interrupt:
        print("zoo: interrupted", file=sys.stderr)
        return exit_code_of(interrupt)


if __name__ == "__main__":
    sys.exit(main())
