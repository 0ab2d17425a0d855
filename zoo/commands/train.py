"""`zoo train`: train an agent in a new run folder, or continue one (--resume)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.commands.common import Parser, Subparsers, log_dir, printer
from zoo.commands.options import (
    CONFIG_OPTIONS,
    TRACK_OPTIONS,
    Option,
    add_config_options,
    config_choice,
    hyperparameter_option,
    tracking_choice,
)
from zoo.schema.help import hyperparameter_epilog

if TYPE_CHECKING:
    from zoo.training.train import TrainResult

TRAIN_EPILOG = """\
hyperparameters are merged in this order, later wins:
  hyperparams/<algo>.yml sections `default` < `atari` (or `atari_ram`) < the env's own section
  < --preset < --hyperparams-file < -n/--n-envs/--vec-env/--seed < --set
examples:
  zoo train --algo dqn --env Breakout
  zoo train --algo a2c --env pong --n-envs 8 --set learning_rate=1e-4
  zoo train --algo ppo --env Breakout --set "clip_range={type: linear, initial: 0.2, final: 0}"
  zoo train --algo dqn --env SpaceInvaders-ram --set policy_kwargs.net_arch=[256,256]
  zoo train --algo dqn --env Breakout --preset keras --set exploration.final=0.05
  zoo train --algo dqn --env Breakout --hyperparams-file logs/dqn/BreakoutNoFrameskip-v4_1/config.yml
  zoo train --algo dqn --env Breakout --record-every 1000000    # videos/step-001000000.mp4, ...
  zoo train --resume logs/dqn/BreakoutNoFrameskip-v4_1 -n 20000000
  zoo train --algo dqn --env Breakout --track mlflow    # also into ./mlruns (pip install zoo[mlflow])
  zoo train --algo dqn --env Breakout --init-from logs/dqn/BreakoutNoFrameskip-v4_1 --skip-random-phase
"""

# train's own options that change what is trained: --resume refuses them as it refuses
# the shared CONFIG_OPTIONS.
TRAIN_OPTIONS: tuple[Option, ...] = (
    hyperparameter_option("save_freq"),
    hyperparameter_option("stop_at_eval_score"),
    hyperparameter_option("record_every"),
    Option(
        ("--resume",),
        {
            "type": Path,
            "metavar": "RUN_DIR",
            "help": "continue that run in its folder from its newest complete checkpoint "
            "(-n then sets the new total; the config is the run's own)",
        },
        with_resume=True,
    ),
    Option(
        ("--init-from",),
        {
            "type": Path,
            "metavar": "MODEL_OR_RUN",
            "help": "start a new run with the weights of a model zip or a run folder "
            "(its final model, else its newest checkpoint)",
        },
    ),
    Option(
        ("--skip-random-phase",),
        {
            "action": "store_true",
            "help": "with --init-from: the loaded policy acts from the first step "
            "(no uniform random play before learning_starts, no exploration random_steps)",
        },
    ),
    *TRACK_OPTIONS,
)


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
    train = commands.add_parser(
        "train",
        help="train an agent and save it in a new run folder",
        description="Train an agent; everything it needs is saved in logs/<algo>/<env>_<n>/.",
        epilog=TRAIN_EPILOG + hyperparameter_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(train, required=False)
    for option in TRAIN_OPTIONS:
        option.add_to(train)
    train.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the networks run (default: auto)",
    )
    train.add_argument(
        "--log-dir",
        type=log_dir,
        default=Path("logs"),
        metavar="DIR",
        help="where run folders go (default: logs)",
    )
    train.add_argument(
        "--quiet", action="store_true", help="no progress bar and no messages, only errors"
    )
    return train


def run(args: argparse.Namespace) -> int:
    # Imported here so that `zoo --help` stays fast.
    from zoo.core.errors import UserError
    from zoo.runs.folders import (
        discard_unstarted_run,
        missing_folders,
        open_run,
        start_run,
        training_lock,
    )
    from zoo.runs.tracking import resumed_tracking
    from zoo.training.memory_admission import admit_replay_buffer
    from zoo.training.model_setup import StartPoint, resolve_device
    from zoo.training.resume import (
        init_weights_file,
        prepare_resume,
        refuse_foreign_run,
        without_random_phase,
    )
    from zoo.training.train import TrainOptions, progress_stream, train

    say = printer(args.quiet)
    tracking = tracking_choice(args)  # before any folder is made
    device = resolve_device(args.device)
    options = TrainOptions(
        device=device,
        progress_stream=progress_stream(args.quiet),
        say=say,
        command=tuple(sys.argv[1:]),
        tracking=tracking,
    )
    if args.resume is not None:
        refuse_with_resume(args)
        if args.timesteps is not None and args.timesteps < 1:
            raise UserError("-n/--timesteps must be at least 1 (the run's new total)")
        run = open_run(args.resume)
        refuse_foreign_run(run)
        resumed_tracking(run.path, tracking)  # its tracked run can be continued
        # Nothing in the folder is touched before the lock is held: a second resume of a
        # run in training must leave it alone.
        with training_lock(run):
            resumption = prepare_resume(run, args.timesteps, options.warn)
            if resumption.finished_now:
                say(f"{run.path} had reached step {resumption.start.step:,}, its total: wrote "
                    f"{run.final_model.name} from that checkpoint; the run is finished")  # fmt: skip
                return 0
            result = train(resumption.config, run, options, start=resumption.start)
        return _report_training(result, say)
    if args.algo is None or args.env is None:
        raise UserError("train needs --algo and --env (or --resume RUN_DIR)")
    config = config_choice(args, TRAIN_OPTIONS).build()
    start = StartPoint()
    if args.skip_random_phase:
        if args.init_from is None:
            raise UserError("--skip-random-phase goes with --init-from MODEL_OR_RUN")
        config = without_random_phase(config)
    if args.init_from is not None:
        start = StartPoint(init_weights=init_weights_file(args.init_from, options.warn))
    admit_replay_buffer(config, device)  # before anything is created
    made_folders = missing_folders(args.log_dir / config.algo)
    run = start_run(args.log_dir, config, device, sys.argv[1:])
    total = config.n_timesteps
    say(f"Training {config.algo} on {config.env.name} for {total:,} steps (seed {config.seed})")
    if start.init_weights is not None:
        say(f"Starting from the weights of {start.init_weights}")
    say(f"Run folder: {run.path}")
    learning_starts = None if config.replay is None else config.replay.learning_starts
    if learning_starts is not None and learning_starts >= total:
        say(f"note: learning_starts ({learning_starts:,}) >= n_timesteps: "
            "the agent only plays at random")  # fmt: skip
    try:
        result = train(config, run, options, start=start)
    except (UserError, KeyboardInterrupt):
        discard_unstarted_run(run, made_folders)  # a fresh run that ended before its first step
        raise
    return _report_training(result, say)


def _report_training(result: TrainResult, say: Callable[[str], None]) -> int:
    run = result.run
    if result.interrupted:
        say(
            f"Interrupted at step {result.timesteps:,}: checkpoint and {run.final_model} saved; "
            f"continue with: zoo train --resume {run.path}"
        )
        return result.exit_code
    if result.stopped_by is not None:
        say(f"Stopped early: {result.stopped_by}")
    say(f"Done: {result.timesteps:,} steps. Model: {run.final_model}")
    say(f"Curves: tensorboard --logdir {run.path.parent.parent}")
    return 0


def refuse_with_resume(args: argparse.Namespace) -> None:
    """--resume continues a run with its own saved config; nothing may change it."""
    from zoo.core.errors import UserError

    declared = (*CONFIG_OPTIONS, *TRAIN_OPTIONS)
    given = [o.shown for o in declared if not o.with_resume and o.given(args)]
    if given:
        allowed = [o.flags[0] for o in declared if o.with_resume and o.dest != "resume"]
        raise UserError(
            f"--resume continues a run with its saved config; {', '.join(given)} cannot be "
            f"combined with it (only {', '.join(allowed)}, --device, --quiet)"
        )
