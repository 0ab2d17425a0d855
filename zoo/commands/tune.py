"""`zoo tune`: an Optuna study of short training runs (see zoo/tune/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.commands.cluster_options import SLURM_EPILOG, add_slurm_options
from zoo.commands.common import Parser, Subparsers, log_dir
from zoo.commands.options import (
    TRACK_OPTIONS,
    add_config_options,
    config_choice,
    tracking_choice,
)
from zoo.core.errors import EXIT_INTERRUPTED
from zoo.schema.help import hyperparameter_epilog
from zoo.schema.names import TRIAL_OBJECTIVES

if TYPE_CHECKING:
    from zoo.cluster.jobs import SlurmOptions

TUNE_EPILOG = """\
each trial is a short zoo train run (same config, envs, callbacks) in
<log-dir>/tune/<study>/trials/; its evaluations go to Optuna for pruning and the objective is
the mean of its later half of evaluations (full games). The search space is
hyperparams/search_spaces.yml, entry by entry overridden by --search-space FILE.
--seeds-per-trial K: each trial trains K runs (trials/trial_NNNN/seed_0 ... seed_<K-1>; run j
has the trial's seed + j*10000), each in a process of its own, moved in lockstep: every run
waits at each evaluation until all have evaluated, then the pruner sees the mean over the
seeds and a pruned trial stops all its runs at that step. As many runs train at a time as
the worker has cores (cores / --workers), the others take turns between evaluations; all K
replay buffers are in memory at once. The objective: --trial-objective (mean, iqm or min)
of the runs' scores, each the mean of that run's later half of evaluations.
examples:
  zoo tune --algo dqn --env Breakout --trials 50 --trial-steps 200000
  zoo tune --algo a2c --env Pong --trials 40 --trial-steps 500000 --workers 2
  zoo tune --algo dqn --env Breakout --trials 30 --trial-steps 200000 --seeds-per-trial 3
  zoo tune --algo dqn --env Breakout --trials 200 --trial-steps 200000 \\
      --storage postgresql://user@dbhost/optuna --study breakout-dqn   # on every machine
  zoo tune --algo dqn --env Breakout --report
"""


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    tune = commands.add_parser(
        "tune",
        help="search the epsilon schedule, n-step and learning-rate decay with Optuna",
        description="Tune hyperparameters with an Optuna study of short training runs.",
        epilog=TUNE_EPILOG + SLURM_EPILOG + hyperparameter_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(tune)
    tune.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="the study's total of complete or pruned trials (all workers together)",
    )
    tune.add_argument("--trial-steps", type=int, metavar="S", help="agent steps of one trial")
    tune.add_argument("--study", metavar="NAME", help="study name (default: <algo>-<env id>)")
    tune.add_argument(
        "--storage",
        metavar="URL_OR_PATH",
        help="a journal file (default: <log-dir>/tune/<study>/journal.log), sqlite:///FILE "
        "(one worker) or postgresql://USER@HOST/DB (workers on many machines)",
    )
    tune.add_argument("--sampler", choices=["tpe", "random"], default="tpe", help="default: tpe")
    tune.add_argument(
        "--pruner", choices=["median", "halving", "none"], default="median", help="default: median"
    )
    tune.add_argument(
        "--evals-per-trial",
        type=int,
        default=4,
        metavar="E",
        help="evaluations per trial (default 4)",
    )
    tune.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="start no trial after this long"
    )
    tune.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="worker processes on this machine (default 1)",
    )
    tune.add_argument(
        "--seeds-per-trial",
        type=int,
        default=1,
        metavar="K",
        help="runs with distinct seeds per trial, in lockstep (default 1; see below)",
    )
    tune.add_argument(
        "--trial-objective",
        choices=TRIAL_OBJECTIVES,
        default="mean",
        help="how the K runs' scores make a trial's value (default: mean; iqm needs K >= 4 "
        "to trim anything)",
    )
    tune.add_argument(
        "--search-space",
        type=Path,
        metavar="FILE",
        help="entries replacing the shipped search space's",
    )
    tune.add_argument(
        "--log-dir", type=log_dir, default=Path("logs"), metavar="DIR", help="default: logs"
    )
    tune.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: auto"
    )
    tune.add_argument(
        "--report", action="store_true", help="only write the report of the study (no trials)"
    )
    tune.add_argument(
        "--heartbeat-interval",
        type=int,
        default=30,
        metavar="SECONDS",
        help="PostgreSQL: seconds between a running trial's heartbeats (default 30)",
    )
    tune.add_argument(
        "--grace-period",
        type=int,
        default=90,
        metavar="SECONDS",
        help="PostgreSQL: a trial with no heartbeat for this long failed and runs again (default 90)",
    )
    tune.add_argument("--quiet", action="store_true", help="no progress lines")
    for option in TRACK_OPTIONS:
        option.add_to(tune)  # each trial is a tracked run, grouped by the study
    tune.add_argument("--slurm", type=int, metavar="N",
                      help="start N workers as Slurm jobs on the study's storage and return")  # fmt: skip
    add_slurm_options(tune, array=False)
    return tune


def run(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.training.model_setup import resolve_device
    from zoo.tune import (
        TuneSettings,
        journal_path,
        open_report_study,
        open_storage,
        prepare_study,
        run_workers,
        write_report,
    )

    if args.seed is not None and args.seed < 0:
        raise UserError("--seed must be >= 0")
    if not args.report and (args.trials is None or args.trial_steps is None):
        raise UserError("tune needs --trials N and --trial-steps S (or --report)")
    slurm = _slurm_choice(args)  # checked before anything is created
    tracking = tracking_choice(args) if not args.report else None  # before any folder
    settings = TuneSettings(
        config=config_choice(args),
        # --report runs no trial: any count passes the checks there.
        trials=args.trials if not args.report else 1,
        trial_steps=args.trial_steps if not args.report else 1,
        study=args.study,
        storage=args.storage,
        sampler=args.sampler,
        pruner=args.pruner,
        evals_per_trial=args.evals_per_trial if not args.report else 1,
        seed=args.seed,
        timeout=args.timeout,
        workers=args.slurm or args.workers,
        search_space=args.search_space,
        log_dir=args.log_dir,
        device=args.device if slurm else resolve_device(args.device),  # --slurm: on the node
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        quiet=args.quiet,
        argv=tuple(sys.argv[2:]),
        gym_packages=tuple(args.gym_packages),
        tracking=tracking,
        seeds_per_trial=args.seeds_per_trial,
        trial_objective=args.trial_objective,
    )
    if slurm is not None:
        from zoo.cluster.tune_jobs import submit_tune

        if submit_tune(settings, args.slurm, slurm, settings.say):
            print(f"The report, when you like: {_without_slurm()} --report")
        return 0
    if not args.report:
        storage, _ = prepare_study(settings)
        settings.say(
            f"Study {settings.study_name} in {storage.shown}: {settings.trials} trials of "
            f"{settings.trial_steps:,} steps, {settings.workers} worker(s) here"
        )
        interrupted = False
        try:
            run_workers(settings)
        except KeyboardInterrupt:
            interrupted = True
    else:
        interrupted = False
        journal = journal_path(args.storage, settings.study_dir)
        if journal is not None and not journal.is_file():  # a report creates no journal
            raise UserError(
                f"no study {settings.study_name!r} in {journal}; run zoo tune with the same "
                "--study and --storage first"
            )
        storage = open_storage(
            args.storage,
            settings.study_dir,
            workers=1,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
        )
    study = open_report_study(storage.storage, settings.study_name, storage.shown)
    env_name = settings.base_config().env.name
    for line in write_report(study, settings.study_dir, settings.algo, env_name):
        print(line)
    print(f"Dashboard: optuna-dashboard {storage.shown}")
    return EXIT_INTERRUPTED if interrupted else 0


def _slurm_choice(args: argparse.Namespace) -> SlurmOptions | None:
    """--slurm N's options (checked), or None; the --slurm-* options need --slurm."""
    from zoo.commands.cluster_options import given_slurm_option, slurm_options
    from zoo.core.errors import UserError

    if args.slurm is None:
        given = given_slurm_option(args)
        if given:
            raise UserError(f"{given} goes with --slurm N")
        return None
    if not 1 <= args.slurm <= 256:
        raise UserError("--slurm N: give between 1 and 256 workers")
    if args.report or args.workers != 1:
        raise UserError(
            "--slurm N starts N workers as Slurm jobs; drop it for --report, and --workers "
            "(processes on this machine) with it"
        )
    return slurm_options(args)


def _without_slurm() -> str:
    from zoo.commands.cluster_options import without_slurm_options

    return without_slurm_options(["zoo", *sys.argv[1:]], slurm_takes_value=True)
