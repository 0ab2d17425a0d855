"""`zoo schedule`: draw the schedules of the configuration `zoo train` would use."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.commands.common import Parser, Subparsers
from zoo.commands.options import add_config_options, config_choice
from zoo.schema.help import hyperparameter_epilog


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    schedule = commands.add_parser(
        "schedule",
        help="draw the epsilon, learning-rate and clip-range schedules of a configuration",
        description="Draw the epsilon, learning-rate and clip-range curves of exactly the "
        "configuration `zoo train` would use with the same options, over the whole run, into "
        "a PNG.",
        epilog=hyperparameter_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(schedule)
    schedule.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("schedule.png"),
        metavar="PNG",
        help="image file (default: schedule.png)",
    )
    schedule.add_argument(
        "--width", type=int, default=1000, help="image width in pixels (default: 1000)"
    )
    schedule.add_argument(
        "--height", type=int, default=700, help="image height in pixels (default: 700)"
    )
    return schedule


def run(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.results.schedule_plot import draw

    if not (100 <= args.width <= 10_000 and 100 <= args.height <= 10_000):
        raise UserError("--width and --height must be between 100 and 10000 pixels")
    config = config_choice(args).build()
    try:
        lines = draw(config, args.output, args.width, args.height)
    except OSError as error:
        raise UserError(f"cannot write {args.output}: {error.strerror}") from None
    for line in lines:
        print(line)
    print(f"Wrote {args.output}")
    return 0
