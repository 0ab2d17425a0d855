"""`zoo report`: a markdown table of the trained runs beside the published scores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.commands.common import Parser, Subparsers, log_dir


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    report = commands.add_parser(
        "report",
        help="a markdown table of the trained runs beside the published scores",
        description="One row per run folder: steps, the evaluation score (mean ± std over full "
        "games, unclipped), the human-normalized score and the published references.",
    )
    report.add_argument(
        "--log-dir", type=log_dir, default=Path("logs"), metavar="DIR", help="default: logs"
    )
    report.add_argument(
        "--episodes",
        type=int,
        metavar="K",
        help="play K full games with each run's best model now (default: the last evaluation)",
    )
    report.add_argument(
        "--references", type=Path, metavar="FILE", help="another markdown table of references"
    )
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="also write it here")
    return report


def run(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.results.report import (
        markdown,
        over_seeds,
        reference_table,
        run_scores,
        shipped_agent_scores,
    )

    if not args.log_dir.is_dir():
        raise UserError(f"{args.log_dir}: no such log folder; train a run first or give --log-dir")
    if args.episodes is not None and args.episodes < 1:
        raise UserError("--episodes must be at least 1")
    references = reference_table(args.references)
    evaluate = None
    if args.episodes is not None:
        episodes = args.episodes

        def evaluate(run_path: Path) -> tuple[list[float], str]:
            from zoo.results.enjoy import choose_model, play
            from zoo.runs.folders import open_run

            try:
                chosen = choose_model(open_run(run_path), None)
            except UserError as error:
                return [], str(error).split(": ", 1)[-1]
            result = play(
                chosen,
                episodes=episodes,
                epsilon=0.0,
                seed=0,
                render=False,
                record=None,
                fps=15,
                say=lambda _: None,
            )
            return result.scores, f"{chosen.kind} model now"

    # Notes go to stderr: stdout is the markdown table, often redirected to a file.
    rows = run_scores(args.log_dir, evaluate, lambda line: print(f"note: {line}", file=sys.stderr))
    shipped = shipped_agent_scores()
    if not rows and not shipped:
        raise UserError(
            f"no runs in {args.log_dir}; train one with: zoo train --algo dqn --env Breakout"
        )
    table = markdown(rows + shipped, references) + over_seeds(rows)
    print(table, end="")
    if args.output is not None:
        try:
            args.output.write_text(table, encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot write {args.output}: {error.strerror}") from None
    return 0
