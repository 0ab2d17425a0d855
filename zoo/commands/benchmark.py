"""`zoo benchmark`: train a grid of algos x envs x seeds and tabulate their scores."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.commands.cluster_options import SLURM_EPILOG, add_slurm_options
from zoo.commands.common import Parser, Subparsers, log_dir, printer
from zoo.commands.options import (
    GYM_PACKAGES,
    TRACK_OPTIONS,
    hyperparameter_option,
    tracking_choice,
)
from zoo.schema.keys import SCHEMAS
from zoo.schema.names import BENCHMARK_SUITES

if TYPE_CHECKING:
    from zoo.cluster.jobs import SlurmOptions
    from zoo.results.benchmark import Cell, Grid

DEFAULT_EVAL_GAMES = 30

BENCHMARK_EPILOG = """\
each cell is an ordinary run folder, <log-dir>/benchmark/<name>/<algo>_<env>_seed<S>/, trained
with the shipped settings (plus --preset, --hyperparams-file, --set as in zoo train). Re-running
the same command skips finished cells and resumes interrupted ones from their newest
checkpoint. A finished cell plays --eval-games whole games (game i with seed i) with its final
and its best model. results.csv (one row per cell), aggregates.csv and results.md (mean, median
and IQM over seeds with 95% bootstrap CIs, from rliable) are written at the end. With
--record-every N each cell keeps a video of one whole evaluation game every N agent steps in
its videos/ folder.
examples:
  zoo benchmark --algos a2c --envs Breakout --seeds 7
  zoo benchmark --algos a2c dqn --envs Breakout Pong --seeds 0 1 2 --workers 2
  zoo benchmark --algos a2c --envs Breakout --seeds 7 --report
  zoo benchmark --suite atari100k --games Breakout Pong --seeds 0 1 --rows results/atari100k
  zoo benchmark --suite atari100k --report --rows results/atari100k
the atari100k suite: --preset (default drq_eps, a dqn; der runs c51) on the 26 Atari-100k games (or
--games), 100k agent steps, then 100 whole games with the preset's evaluation epsilon; each
evaluated cell's result row is kept in --rows DIR (one CSV file each, never replaced), and
atari100k.md tabulates every row beside the published DER, OTRainbow, DrQ, DrQ(eps) and SPR.
"""
BENCHMARK_EPILOG += (
    SLURM_EPILOG
    + """  zoo benchmark --algos dqn --envs Pong Breakout --seeds 0 1 2 --log-dir /shared/logs --slurm \\
      --slurm-partition gpu --slurm-time 12:00:00      # one array task per cell
  zoo benchmark --algos dqn --envs Pong Breakout --seeds 0 1 2 --log-dir /shared/logs --report
"""
)


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    bench = commands.add_parser(
        "benchmark",
        help="train a grid of algos x envs x seeds and tabulate their scores",
        description="Train every algo on every env with every seed, evaluate each on whole "
        "games and write a results table with confidence intervals over seeds.",
        epilog=BENCHMARK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--algos", nargs="+", choices=list(SCHEMAS), metavar="ALGO",
                       help=f"algorithms ({', '.join(SCHEMAS)}); required without --suite")  # fmt: skip
    bench.add_argument("--envs", nargs="+", metavar="ENV",
                       help="games or env ids (Breakout, Pong, CartPole-v1); required without --suite")  # fmt: skip
    bench.add_argument("--suite", choices=BENCHMARK_SUITES,
                       help="a published benchmark's protocol instead of --algos/--envs")  # fmt: skip
    bench.add_argument("--games", nargs="+", default=[], metavar="GAME",
                       help="with --suite: only these of its games (default: all)")  # fmt: skip
    bench.add_argument("--rows", type=Path, metavar="DIR",
                       help="with --suite: keep each evaluated cell's result row in DIR and "
                       "tabulate every row there")  # fmt: skip
    bench.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S",
                       help="seeds, one cell each (default: 0)")  # fmt: skip
    bench.add_argument("--preset", metavar="NAME", help="a preset from hyperparams/presets.yml")
    bench.add_argument("-n", "--timesteps", type=int, metavar="N",
                       help="agent steps of every cell (default: each config's n_timesteps)")  # fmt: skip
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one hyperparameter in every cell; repeatable")  # fmt: skip
    bench.add_argument("--hyperparams-file", type=Path, metavar="FILE",
                       help="YAML file of hyperparameters for every cell")  # fmt: skip
    hyperparameter_option("record_every").add_to(bench)
    bench.add_argument("--name", metavar="NAME",
                       help="the grid's folder under <log-dir>/benchmark (default: algos_envs)")  # fmt: skip
    bench.add_argument("--cells", nargs="+", default=[], metavar="CELL",
                       help="only these cells of the grid (names as in its folder)")  # fmt: skip
    bench.add_argument("--workers", type=int, default=1, metavar="K",
                       help="cells trained side by side, each in its own process (default 1)")  # fmt: skip
    bench.add_argument("--eval-games", type=int, metavar="G",
                       help=f"whole games of each cell's final evaluation (default {DEFAULT_EVAL_GAMES}; "
                       f"a --suite: its protocol's)")  # fmt: skip
    bench.add_argument("--report", action="store_true",
                       help="only write the results of what is trained so far (no training)")  # fmt: skip
    bench.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                       help="where the networks train (default: auto)")  # fmt: skip
    bench.add_argument("--log-dir", type=log_dir, default=Path("logs"), metavar="DIR",
                       help="default: logs")  # fmt: skip
    bench.add_argument("--quiet", action="store_true", help="no progress bar and no messages")
    GYM_PACKAGES.add_to(bench)
    for option in TRACK_OPTIONS:
        option.add_to(bench)  # each cell is a tracked run, grouped by the grid
    bench.add_argument("--slurm", action="store_true",
                       help="submit the cells left to train as a Slurm job array and return")  # fmt: skip
    add_slurm_options(bench, array=True)
    return bench


def run(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.results.benchmark import (
        Grid,
        claim_grid_dir,
        default_grid_name,
        grid_cells,
        select_cells,
    )
    from zoo.results.benchmark_report import write_results
    from zoo.results.benchmark_workers import run_cells
    from zoo.training.model_setup import resolve_device

    if args.eval_games is not None and args.eval_games < 1:
        raise UserError("--eval-games must be at least 1 (whole games per final evaluation)")
    if not 1 <= args.workers <= 64:
        raise UserError("--workers must be between 1 and 64")
    if any(seed < 0 for seed in args.seeds):
        raise UserError("--seeds must be >= 0")
    algos, envs, preset, eval_games = _grid_choice(args)
    slurm = _slurm_choice(args)  # checked before any folder is made
    tracking = tracking_choice(args) if not args.report else None  # before any folder
    name = args.name or (f"{args.suite}_{preset}" if args.suite else default_grid_name(algos, envs))
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"--name {name!r}: give a plain folder name")
    grid = Grid(
        name=name,
        algos=tuple(dict.fromkeys(algos)),
        envs=tuple(dict.fromkeys(envs)),
        seeds=tuple(dict.fromkeys(args.seeds)),
        preset=preset,
        overrides=tuple(args.set),
        hyperparams_file=args.hyperparams_file,
        timesteps=args.timesteps,
        gym_packages=tuple(args.gym_packages),
        record_every=args.record_every,
        tracking=tracking.in_group(f"benchmark/{name}") if tracking else None,
    )
    grid_dir = args.log_dir / "benchmark" / name
    say = printer(args.quiet)
    if args.suite and args.report and not (grid_dir / "grid.yml").is_file():
        if args.rows is None:
            raise UserError(
                f"no benchmark {name} in {args.log_dir}: give --rows DIR to tabulate kept rows"
            )
        say(f"Wrote {_suite_table(None, args.rows)}")
        return 0
    cells = select_cells(grid_cells(grid, grid_dir), args.cells)
    interrupted = 0
    if not args.report:
        from zoo.runs.trackers import create_tracking_group

        create_tracking_group(grid.tracking)  # once, before cells start side by side
    if slurm is not None:
        return _submit(args, grid, grid_dir, cells, eval_games, slurm, say)
    if not args.report:
        device = resolve_device(args.device)
        claim_grid_dir(grid, grid_dir)
        say(f"Benchmark {name}: {len(cells)} cell(s) in {grid_dir}")
        outcomes = run_cells(
            grid,
            grid_dir,
            names=[c.name for c in cells],
            eval_games=eval_games,
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
    if args.suite:
        say(f"Wrote {_suite_table(grid_dir, args.rows)}")
    if interrupted in (130, 143):  # a cell that died or failed said so in its own line
        say(f"Interrupted: run the same command again to continue ({grid_dir})")
    return interrupted


def _slurm_choice(args: argparse.Namespace) -> SlurmOptions | None:
    """The Slurm options of --slurm (checked), or None; --slurm-* options need --slurm."""
    from zoo.commands.cluster_options import given_slurm_option, slurm_options
    from zoo.core.errors import UserError

    if not args.slurm:
        given = given_slurm_option(args)
        if given:
            raise UserError(f"{given} goes with --slurm")
        return None
    if args.report or args.workers != 1:
        raise UserError(
            "--slurm submits the grid's cells as Slurm jobs; drop it for --report (the results "
            "of what has finished) or --workers (cells side by side on this machine)"
        )
    return slurm_options(args)


def _submit(
    args: argparse.Namespace,
    grid: Grid,
    grid_dir: Path,
    cells: list[Cell],
    eval_games: int,
    slurm: SlurmOptions,
    say: Callable[[str], None],
) -> int:
    """Submit the cells left to train; write the results of those already finished."""
    import sys

    from zoo.cluster.benchmark_jobs import submit_benchmark
    from zoo.commands.cluster_options import warn_if_not_shared, without_slurm_options
    from zoo.results.benchmark import claim_grid_dir
    from zoo.results.benchmark_report import write_results

    if not slurm.dry_run:
        warn_if_not_shared(args.log_dir, slurm.partition)
        claim_grid_dir(grid, grid_dir)
    argv = sys.argv[2:]
    jobs = submit_benchmark(grid, grid_dir, cells, eval_games, args.device, slurm, argv, say)
    if slurm.dry_run:
        return 0
    for path in write_results(grid_dir, grid.name):
        say(f"Wrote {path} (the cells finished so far)")
    again = without_slurm_options(["zoo", "benchmark", *argv], slurm_takes_value=False)
    if jobs:
        say(f"Gather the results: {again} --report    (or run this command again)")
    return 0


def _grid_choice(args: argparse.Namespace) -> tuple[list[str], list[str], str | None, int]:
    """(algos, envs, preset, final evaluation games): the options', or a suite's protocol."""
    from zoo.core.errors import UserError

    if args.suite is None:
        if args.games or args.rows is not None:
            raise UserError("--games and --rows go with --suite; name the envs with --envs")
        if not args.algos or not args.envs:
            raise UserError("give --algos and --envs (or --suite atari100k)")
        return args.algos, args.envs, args.preset, args.eval_games or DEFAULT_EVAL_GAMES
    from zoo.config.layers import preset_algo
    from zoo.results import atari100k

    given = [option for option, value in (("--algos", args.algos), ("--envs", args.envs)) if value]
    if given:
        raise UserError(
            f"--suite {args.suite} sets the algo and the games; drop {given[0]} (choose games "
            "with --games, the agent with --preset)"
        )
    preset = args.preset or atari100k.DEFAULT_PRESET
    return (
        [preset_algo(preset)],
        list(atari100k.suite_games(args.games)),
        preset,
        args.eval_games or atari100k.EVAL_EPISODES,
    )


def _suite_table(grid_dir: Path | None, rows_dir: Path | None) -> Path:
    """Keep each evaluated cell's row in `rows_dir` (once), then write atari100k.md of every
    row: those kept there and the grid's own; returns the table's path."""
    from zoo.core.atomic import atomic_write_text
    from zoo.results import atari100k

    kept = atari100k.read_rows(rows_dir) if rows_dir is not None and rows_dir.is_dir() else []
    fresh = []
    if grid_dir is not None:
        for row, keep in atari100k.grid_rows(grid_dir):
            if rows_dir is None:
                fresh.append(row)
            elif keep(rows_dir):
                kept.append(row)
    text = f"# Atari-100k\n\n{atari100k.table(kept + fresh)}"
    folder = rows_dir if rows_dir is not None else grid_dir
    assert folder is not None
    path = folder / "atari100k.md"
    atomic_write_text(path, text)
    return path
