"""`zoo plot`: learning curves of runs, overlaid or as a mean, into a PNG or SVG."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.commands.common import Parser, Subparsers, log_dir
from zoo.commands.options import GYM_PACKAGES
from zoo.schema.keys import SCHEMAS
from zoo.schema.names import PLOT_PANELS, PLOT_X_AXES


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    plot = commands.add_parser(
        "plot",
        help="draw learning curves of runs into a PNG or SVG",
        description="Training and evaluation scores (full games, unclipped) against agent steps "
        "or training games, for run folders or every run of --algo and --env; several runs "
        "overlaid, or with --mean as the mean and spread of each algo and env.",
    )
    plot.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR", help="run folders")
    plot.add_argument("--algo", choices=list(SCHEMAS), help="with --env: every run of these")
    plot.add_argument("--env", help="with --algo: every run of this env (short or full name)")
    plot.add_argument("--exp-id", type=int, metavar="N", help="only run <env>_N of --algo/--env")
    plot.add_argument(
        "--log-dir", type=log_dir, default=Path("logs"), metavar="DIR", help="default: logs"
    )
    plot.add_argument("-o", "--output", type=Path, metavar="FILE",
                      help="a .png or .svg (default: curves.png in the run folder, "
                      "or in the current folder for several runs)")  # fmt: skip
    plot.add_argument("--x", choices=PLOT_X_AXES, default="steps", help="x axis (default: steps)")
    plot.add_argument(
        "--window", type=int, default=100, help="games per moving average (default 100; 1: raw)"
    )
    plot.add_argument("--mean", action="store_true", help="mean ± std across runs of one env")
    plot.add_argument("--panels", nargs="+", choices=list(PLOT_PANELS), default=[],
                      help="extra panels below the scores")  # fmt: skip
    plot.add_argument("--width", type=int, default=1200, help="pixels (default: 1200)")
    plot.add_argument("--height", type=int, default=800, help="pixels (default: 800)")
    plot.add_argument("--title", help="figure title (default: the envs and the smoothing)")
    GYM_PACKAGES.add_to(plot)  # --algo/--env of an env a package registers
    return plot


def run(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.results.plot import PlotOptions, draw, load_run_curves
    from zoo.runs.folders import find_run, numbered_runs, open_run, runs_found

    if args.window < 1 or not 200 <= args.width <= 8000 or not 200 <= args.height <= 8000:
        raise UserError("--window must be >= 1, --width and --height in [200, 8000] pixels")
    if (args.algo is None) != (args.env is None):
        raise UserError("give --algo and --env together (or run folders)")
    paths = list(args.runs)
    if args.algo is not None:
        if args.exp_id is not None:
            paths.append(find_run(args.log_dir, args.algo, args.env, args.exp_id).path)
        else:
            found = numbered_runs(args.log_dir, args.algo, args.env)
            if not found:
                raise UserError(f"no {args.algo} run of {args.env} in {args.log_dir}; "
                                f"{runs_found(args.log_dir, args.algo, args.env)}")  # fmt: skip
            paths.extend(found[number] for number in sorted(found))
    if not paths:
        raise UserError("give run folders, or --algo and --env to plot their runs")
    runs = [open_run(path) for path in dict.fromkeys(paths)]
    curves = [load_run_curves(run, f"{run.path.parent.name}/{run.path.name}") for run in runs]
    output = args.output or (runs[0].path if len(runs) == 1 else Path()) / "curves.png"
    options = PlotOptions(
        x_axis=args.x,
        window=args.window,
        mean=args.mean,
        panels=tuple(dict.fromkeys(args.panels)),
        width=args.width,
        height=args.height,
        title=args.title,
    )
    draw(curves, output, options, print)
    games = sum(len(c.game_scores) for c in curves)
    evaluations = sum(len(c.eval_steps) for c in curves)
    print(f"Plotted {len(curves)} run(s), {games:,} training games, {evaluations:,} "
          f"evaluations: {output}")  # fmt: skip
    return 0
