"""`zoo benchmark`: train a grid of algos x envs x seeds and tabulate their scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.commands.common import Parser, Subparsers, log_dir, printer
from zoo.commands.options import GYM_PACKAGES
from zoo.schema import SCHEMAS

BENCHMARK_EPILOG = """\
each cell is an ordinary run folder, <log-dir>/benchmark/<name>/<algo>_<env>_seed<S>/, trained
with the shipped settings (plus --preset, --hyperparams-file, --set as in zoo train). Re-running
the same command skips finished cells and resumes interrupted ones from their newest
checkpoint. A finished cell plays --eval-games whole games (game i with seed i) with its final
and its best model. results.csv (one row per cell), aggregates.csv and results.md (mean, median
and IQM over seeds with 95% bootstrap CIs, from rliable) are written at the end.
examples:
  zoo benchmark --algos a2c --envs Breakout --seeds 7
  zoo benchmark --algos a2c dqn --envs Breakout Pong --seeds 0 1 2 --workers 2
  zoo benchmark --algos a2c --envs Breakout --seeds 7 --report
"""


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    bench = commands.add_parser(
        "benchmark",
        help="train a grid of algos x envs x seeds and tabulate their scores",
        description="Train every algo on every env with every seed, evaluate each on whole "
        "games and write a results table with confidence intervals over seeds.",
        epilog=BENCHMARK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--algos", nargs="+", required=True, choices=list(SCHEMAS), metavar="ALGO",
                       help=f"algorithms ({', '.join(SCHEMAS)})")  # fmt: skip
    bench.add_argument("--envs", nargs="+", required=True, metavar="ENV",
                       help="games or env ids (Breakout, Pong, CartPole-v1)")  # fmt: skip
    bench.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S",
                       help="seeds, one cell each (default: 0)")  # fmt: skip
    bench.add_argument("--preset", metavar="NAME", help="a preset from hyperparams/presets.yml")
    bench.add_argument("-n", "--timesteps", type=int, metavar="N",
                       help="agent steps of every cell (default: each config's n_timesteps)")  # fmt: skip
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one hyperparameter in every cell; repeatable")  # fmt: skip
    bench.add_argument("--hyperparams-file", type=Path, metavar="FILE",
                       help="YAML file of hyperparameters for every cell")  # fmt: skip
    bench.add_argument("--name", metavar="NAME",
                       help="the grid's folder under <log-dir>/benchmark (default: algos_envs)")  # fmt: skip
    bench.add_argument("--cells", nargs="+", default=[], metavar="CELL",
                       help="only these cells of the grid (names as in its folder)")  # fmt: skip
    bench.add_argument("--workers", type=int, default=1, metavar="K",
                       help="cells trained side by side, each in its own process (default 1)")  # fmt: skip
    bench.add_argument("--eval-games", type=int, default=30, metavar="G",
                       help="whole games of each cell's final evaluation (default 30)")  # fmt: skip
    bench.add_argument("--report", action="store_true",
                       help="only write the results of what is trained so far (no training)")  # fmt: skip
    bench.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                       help="where the networks train (default: auto)")  # fmt: skip
    bench.add_argument("--log-dir", type=log_dir, default=Path("logs"), metavar="DIR",
                       help="default: logs")  # fmt: skip
    bench.add_argument("--quiet", action="store_true", help="no progress bar and no messages")
    GYM_PACKAGES.add_to(bench)
    return bench


def run(args: argparse.Namespace) -> int:
    from zoo.benchmark import (
        Grid,
        claim_grid_dir,
        default_grid_name,
        grid_cells,
        run_cells,
        select_cells,
    )
    from zoo.benchmark_report import write_results
    from zoo.errors import UserError
    from zoo.train import resolve_device

    if args.eval_games < 1:
        raise UserError("--eval-games must be at least 1 (whole games per final evaluation)")
    if not 1 <= args.workers <= 64:
        raise UserError("--workers must be between 1 and 64")
    if any(seed < 0 for seed in args.seeds):
        raise UserError("--seeds must be >= 0")
    name = args.name or default_grid_name(args.algos, args.envs)
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"--name {name!r}: give a plain folder name")
    grid = Grid(
        name=name,
        algos=tuple(dict.fromkeys(args.algos)),
        envs=tuple(dict.fromkeys(args.envs)),
        seeds=tuple(dict.fromkeys(args.seeds)),
        preset=args.preset,
        overrides=tuple(args.set),
        hyperparams_file=args.hyperparams_file,
        timesteps=args.timesteps,
        gym_packages=tuple(args.gym_packages),
    )
    grid_dir = args.log_dir / "benchmark" / name
    cells = select_cells(grid_cells(grid, grid_dir), args.cells)
    say = printer(args.quiet)
    interrupted = 0
    if not args.report:
        device = resolve_device(args.device)
        claim_grid_dir(grid, grid_dir)
        say(f"Benchmark {name}: {len(cells)} cell(s) in {grid_dir}")
        outcomes = run_cells(
            grid,
            grid_dir,
            names=[c.name for c in cells],
            eval_games=args.eval_games,
            device=device,
            workers=args.workers,
            quiet=args.quiet,
        )
        interrupted = next((o.exit_code for o in outcomes if o.exit_code), 0)
    elif not (grid_dir / "grid.yml").is_file():
        raise UserError(f"no benchmark {name} in {args.log_dir}; run it first without --report")
    else:
        claim_grid_dir(grid, grid_dir)  # checks that the folder holds this grid
    for path in write_results(grid_dir, name):
        say(f"Wrote {path}")
    if interrupted in (130, 143):  # a cell that died or failed said so in its own line
        say(f"Interrupted: run the same command again to continue ({grid_dir})")
    return interrupted
