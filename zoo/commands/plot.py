"""`zoo plot`: learning curves of runs, overlaid or as a mean, into a PNG or SVG; with
--benchmark or --rows, rliable's figures of benchmark results into PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.commands.common import Parser, Subparsers, log_dir
from zoo.commands.options import GYM_PACKAGES
from zoo.schema.keys import SCHEMAS
from zoo.schema.names import PLOT_PANELS, PLOT_X_AXES

BOOTSTRAP_REPS = 2_000  # zoo.results.benchmark_figures.BOOTSTRAP_REPS, without importing it


PLOT_EPILOG = """\
examples:
  zoo plot logs/dqn/BreakoutNoFrameskip-v4_1
  zoo plot --algo dqn --env Breakout --mean --panels loss -o breakout.svg
  zoo plot --benchmark logs/benchmark/a2c-dqn_Breakout-Pong --compare dqn a2c
  zoo plot --rows benchmarks/results/atari100k -o figures/atari100k
with --benchmark (grid folders of `zoo benchmark`, or their names under --log-dir/benchmark)
or --rows (Atari-100k result rows), rliable's figures of the results go into -o DIR (default:
figures/ in the first folder given): median, IQM, mean and optimality gap with 95%
stratified-bootstrap CIs per config (an algo of a grid, grid:algo for several grids, an agent
of the rows), performance profiles, P(A > B) with --compare A B, and the IQM of each config's
evaluations over steps. Scores are human-normalized (1 = human) where the games allow it.
"""
# The options of learning curves, which rliable's figures of a benchmark do not take.
CURVE_OPTIONS = {
    "runs": "RUN_DIR",
    "algo": "--algo",
    "env": "--env",
    "exp_id": "--exp-id",
    "x": "--x",
    "window": "--window",
    "mean": "--mean",
    "panels": "--panels",
    "width": "--width",
    "height": "--height",
    "title": "--title",
}


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    plot = commands.add_parser(
        "plot",
        help="draw learning curves of runs, or rliable's figures of a benchmark, into images",
        description="Training and evaluation scores (full games, unclipped) against agent steps "
        "or training games, for run folders or every run of --algo and --env; several runs "
        "overlaid, or with --mean as the mean and spread of each algo and env.",
        epilog=PLOT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
                      "or in the current folder for several runs); with --benchmark or --rows "
                      "a folder for the figures")  # fmt: skip
    plot.add_argument("--x", choices=PLOT_X_AXES, help="x axis (default: steps)")
    plot.add_argument("--window", type=int, help="games per moving average (default 100; 1: raw)")
    plot.add_argument("--mean", action="store_true", help="mean ± std across runs of one env")
    plot.add_argument("--panels", nargs="+", choices=list(PLOT_PANELS), default=[],
                      help="extra panels below the scores")  # fmt: skip
    plot.add_argument("--width", type=int, help="pixels (default: 1200)")
    plot.add_argument("--height", type=int, help="pixels (default: 800)")
    plot.add_argument("--title", help="figure title (default: the envs and the smoothing)")
    plot.add_argument("--benchmark", nargs="+", type=Path, metavar="DIR",
                      help="rliable's figures of these benchmark grids' results")  # fmt: skip
    plot.add_argument("--rows", type=Path, metavar="DIR",
                      help="rliable's figures of the Atari-100k result rows in DIR")  # fmt: skip
    plot.add_argument("--compare", nargs=2, metavar=("A", "B"),
                      help="with --benchmark/--rows: also draw P(A > B)")  # fmt: skip
    plot.add_argument("--bootstrap-reps", type=int, metavar="N",
                      help="with --benchmark/--rows: bootstrap resamples per CI "
                      f"(default {BOOTSTRAP_REPS:,})")  # fmt: skip
    GYM_PACKAGES.add_to(plot)  # --algo/--env of an env a package registers
    plot.set_defaults(plot_parser=plot)  # run() reports misplaced options as argparse would
    return plot


def run(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.results.plot import PlotOptions, draw, load_run_curves
    from zoo.runs.folders import find_run, numbered_runs, open_run, runs_found

    parser: argparse.ArgumentParser = args.plot_parser
    if args.benchmark is not None or args.rows is not None:
        given = [
            flag
            for name, flag in CURVE_OPTIONS.items()
            if getattr(args, name) not in (None, False, [])
        ]
        if given:
            parser.error(f"{given[0]} draws learning curves; --benchmark and --rows take none")
        return _benchmark_figures(args)
    if args.compare is not None or args.bootstrap_reps is not None:
        flag = "--compare" if args.compare is not None else "--bootstrap-reps"
        parser.error(f"{flag} goes with --benchmark or --rows")
    args.x = args.x or "steps"
    args.window = 100 if args.window is None else args.window
    args.width = 1200 if args.width is None else args.width
    args.height = 800 if args.height is None else args.height
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


def _benchmark_figures(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.results.benchmark_figures import compute, draw
    from zoo.results.benchmark_scores import grid_records, rows_records, score_set

    reps = BOOTSTRAP_REPS if args.bootstrap_reps is None else args.bootstrap_reps
    if not 100 <= reps <= 1_000_000:
        raise UserError("--bootstrap-reps must be in [100, 1,000,000]")
    grids = [_grid_dir(path, args.log_dir) for path in dict.fromkeys(args.benchmark or [])]
    if args.output is not None and args.output.suffix.lower() in (".png", ".svg"):
        raise UserError(f"-o {args.output}: with --benchmark or --rows, -o names a folder")
    records = []
    for grid in grids:
        records += grid_records(grid, f"{grid.name}:" if len(grids) > 1 else "")
    if args.rows is not None:
        records += rows_records(args.rows)
    scores = score_set(records)
    figures = compute(scores, tuple(args.compare) if args.compare else None, reps)
    for note in scores.notes:
        print(note)
    output = args.output or (grids[0] if grids else args.rows) / "figures"
    for path in draw(figures, output):
        print(f"Wrote {path}")
    return 0


def _grid_dir(path: Path, log_dir: Path) -> Path:
    """A grid folder as given, or a grid's name under <log-dir>/benchmark."""
    named = log_dir / "benchmark" / path
    return named if not path.is_dir() and len(path.parts) == 1 and named.is_dir() else path
