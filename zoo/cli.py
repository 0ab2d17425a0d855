"""The `zoo` command: one sub-command per verb. User mistakes become one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from zoo import __version__
from zoo.errors import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from zoo.config import Config
    from zoo.enjoy import ChosenModel
    from zoo.runs import Run
    from zoo.train import TrainResult

EXIT_USER_ERROR = 2


# An error message echoes what the user gave: long values are cut so it stays one line.
MAX_MESSAGE_CHARS = 600


def one_line(message: str) -> str:
    """The message on one line, at most MAX_MESSAGE_CHARS long."""
    flat = " ".join(message.split())
    if len(flat) <= MAX_MESSAGE_CHARS:
        return flat
    return f"{flat[: MAX_MESSAGE_CHARS - 40]} ... ({len(flat) - MAX_MESSAGE_CHARS + 40:,} more characters)"


def log_dir(text: str) -> Path:
    """--log-dir: a folder name; an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a folder name (e.g. logs), not an empty string")
    return Path(text)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USER_ERROR, f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)\n"
        )


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
  zoo train --resume logs/dqn/BreakoutNoFrameskip-v4_1 -n 20000000
  zoo train --algo dqn --env Breakout --init-from logs/dqn/BreakoutNoFrameskip-v4_1 --skip-random-phase
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zoo",
        description="Train reinforcement-learning agents on Atari games with Stable-Baselines3.",
        epilog="Run `zoo COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_train(commands)
    _add_schedule(commands)
    _add_enjoy(commands)
    _add_report(commands)
    _add_plot(commands)
    _add_tune(commands)
    _add_benchmark(commands)
    envs = commands.add_parser("envs", help="list the Atari games zoo knows by short name")
    envs.set_defaults(handler=_run_envs)
    return parser


def _add_config_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The options that select and adjust a configuration; `train` and `schedule` share them."""
    from zoo.hyperparameter_help import CONFIG_FLAG_KEYS, add_hyperparameter_flags
    from zoo.schema import SCHEMAS

    parser.add_argument(
        "--algo", required=required, choices=list(SCHEMAS), help="the learning algorithm"
    )
    parser.add_argument(
        "--env",
        required=required,
        help="game or env: a short case-insensitive name (Breakout, pong, SpaceInvaders-ram) "
        "or a gymnasium id (BreakoutNoFrameskip-v4, ALE/Breakout-v5, CartPole-v1)",
    )
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="a named published setting from hyperparams/presets.yml "
        "(sb3_benchmark, nature2015, dqn2013, keras, a2c_nstep5, ppo2017)",
    )
    add_hyperparameter_flags(parser, CONFIG_FLAG_KEYS)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one hyperparameter; VALUE is YAML (1e-4, true, [64, 64], {eps: 1e-5}); "
        "KEY may be dotted (policy_kwargs.net_arch=[64,64]); repeatable",
    )
    parser.add_argument(
        "--hyperparams-file",
        type=Path,
        metavar="FILE",
        help="YAML file of hyperparameters, flat or in sections like hyperparams/*.yml "
        "(a run's config.yml works as is; so do rl-baselines3-zoo's files)",
    )
    _add_gym_packages(parser)


def _add_gym_packages(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gym-packages",
        action="append",
        default=[],
        metavar="PKG",
        help="import this package first, for the gymnasium envs it registers; repeatable",
    )


def _config_from_args(args: argparse.Namespace) -> Config:
    from zoo.config import build_config
    from zoo.hyperparameter_help import flag_values

    return build_config(
        args.algo,
        args.env,
        hyperparams_file=args.hyperparams_file,
        overrides=args.set,
        flags=flag_values(args),
        preset=args.preset,
    )


def _add_train(commands: argparse._SubParsersAction[_Parser]) -> None:
    from zoo.hyperparameter_help import (
        TRAIN_FLAG_KEYS,
        add_hyperparameter_flags,
        hyperparameter_epilog,
    )

    train = commands.add_parser(
        "train",
        help="train an agent and save it in a new run folder",
        description="Train an agent; everything it needs is saved in logs/<algo>/<env>_<n>/.",
        epilog=TRAIN_EPILOG + hyperparameter_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(train, required=False)
    add_hyperparameter_flags(train, TRAIN_FLAG_KEYS)
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue that run in its folder from its newest complete checkpoint "
        "(-n then sets the new total; the config is the run's own)",
    )
    train.add_argument(
        "--init-from",
        type=Path,
        metavar="MODEL_OR_RUN",
        help="start a new run with the weights of a model zip or a run folder "
        "(its final model, else its newest checkpoint)",
    )
    train.add_argument(
        "--skip-random-phase",
        action="store_true",
        help="with --init-from: the loaded policy acts from the first step "
        "(no uniform random play before learning_starts, no exploration random_steps)",
    )
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
    train.set_defaults(handler=_run_train)


def _add_schedule(commands: argparse._SubParsersAction[_Parser]) -> None:
    from zoo.hyperparameter_help import hyperparameter_epilog

    schedule = commands.add_parser(
        "schedule",
        help="draw the epsilon, learning-rate and clip-range schedules of a configuration",
        description="Draw the epsilon, learning-rate and clip-range curves of exactly the "
        "configuration `zoo train` would use with the same options, over the whole run, into "
        "a PNG.",
        epilog=hyperparameter_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(schedule)
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
    schedule.set_defaults(handler=_run_schedule)


def _add_enjoy(commands: argparse._SubParsersAction[_Parser]) -> None:
    from zoo.schema import SCHEMAS

    enjoy = commands.add_parser(
        "enjoy",
        help="watch a trained agent play whole games, or record them",
        description="Play whole games (all lives, unclipped score) with a trained model: the "
        "newest run's best model by default, else its final model, else its newest checkpoint.",
    )
    enjoy.add_argument("--algo", choices=list(SCHEMAS), help="algo of the run to play")
    enjoy.add_argument("--env", help="env of the run to play (short or full name)")
    enjoy.add_argument("--run", type=Path, metavar="DIR", help="play this run folder instead")
    enjoy.add_argument("--pretrained", metavar="NAME",
                       help="play an agent shipped with zoo (e.g. a2c-Breakout); with --algo and "
                       "--env and no run of them in the log folder, their shipped agent plays")  # fmt: skip
    enjoy.add_argument("--exp-id", type=int, metavar="N", help="play run <env>_N (default: newest)")
    enjoy.add_argument("--model", metavar="WHICH",
                       help="best, final or checkpoint of the run, or any SB3 model FILE.zip "
                       "(with --env when it is in no run folder)")  # fmt: skip
    enjoy.add_argument("--episodes", type=int, default=5, metavar="K", help="games (default 5)")
    enjoy.add_argument(
        "--epsilon", type=float, default=0.0, metavar="E", help="random-action rate (default 0)"
    )
    enjoy.add_argument("--seed", type=int, default=0, help="seed of the games (default 0)")
    enjoy.add_argument("--no-render", action="store_true", help="no window, only the scores")
    enjoy.add_argument("--record", type=Path, metavar="FILE", help="write a .mp4 or .gif video")
    enjoy.add_argument(
        "--fps", type=int, default=15, help="video frames per second (default 15: real time)"
    )
    enjoy.add_argument(
        "--log-dir", type=log_dir, default=Path("logs"), metavar="DIR", help="default: logs"
    )
    _add_gym_packages(enjoy)
    enjoy.set_defaults(handler=_run_enjoy)


def _run_enjoy(args: argparse.Namespace) -> int:
    from zoo.enjoy import check_record_target, choose_model, display_available, play, summary
    from zoo.errors import UserError

    if args.episodes < 1:
        raise UserError(f"--episodes {args.episodes}: give 1 or more games")
    if not 0 <= args.epsilon <= 1:
        raise UserError(f"--epsilon {args.epsilon:g}: give a random-action rate in [0, 1]")
    if not 1 <= args.fps <= 240:
        raise UserError(f"--fps {args.fps}: give 1 to 240 video frames per second")
    if args.record is not None:
        check_record_target(args.record)
    chosen = _given_model(args) or _shipped_model(args)
    if chosen is None:
        chosen = choose_model(_run_to_enjoy(args), args.model)
    if chosen.run is not None and (
        args.run is not None or args.pretrained is not None or chosen.kind == "given"
    ):
        _check_run_matches(args, chosen.run, "--model" if chosen.kind == "given" else None)
    render = not args.no_render and display_available()
    if not args.no_render and not render:
        print("no display found: playing without a window (--record FILE saves a video)")
    if chosen.kind != "shipped":
        print(f"Playing the {chosen.kind} model {chosen.path}")
    result = play(
        chosen, args.episodes, args.epsilon, args.seed, render, args.record, args.fps, print
    )
    print(summary(result.scores))
    if args.record is not None:
        merged = (
            " (GIF merges repeated frames into longer ones)"
            if args.record.suffix.lower() == ".gif"
            else ""
        )
        print(f"Recorded {result.frames_recorded:,} frames to {args.record}{merged}")
    return 0


def _check_run_matches(args: argparse.Namespace, run: Run, option: str | None = None) -> None:
    """--algo and --env given with --run, --pretrained or --model FILE.zip (`option`) must
    be the run's own, not ignored."""
    from zoo.envs import resolve_env
    from zoo.errors import UserError

    info = run.read_info()
    what = "the shipped agent" if args.pretrained is not None else str(run.path)
    flag = option or ("--pretrained" if args.pretrained is not None else "--run")
    if args.algo is not None and args.algo != info.get("algo"):
        raise UserError(
            f"--algo {args.algo}: {what} is a run of {info.get('algo')}; leave out --algo with {flag}"
        )
    if args.env is not None and resolve_env(args.env).name != info.get("env"):
        raise UserError(
            f"--env {args.env}: {what} plays {info.get('env')}; leave out --env with {flag}"
        )


def _run_to_enjoy(args: argparse.Namespace) -> Run:
    from zoo.enjoy import choose_model
    from zoo.errors import UserError
    from zoo.runs import find_run, open_run

    if args.run is not None:
        return open_run(args.run)
    if args.algo is None or args.env is None:
        raise UserError(
            "enjoy needs --algo and --env, --run DIR, --model FILE.zip or --pretrained NAME"
        )
    return find_run(args.log_dir, args.algo, args.env, args.exp_id,
                    usable=lambda run: choose_model(run, args.model), say=print)  # fmt: skip


def _given_model(args: argparse.Namespace) -> ChosenModel | None:
    """--model FILE.zip; None for --model best/final/checkpoint or no --model."""
    from zoo.enjoy import MODEL_CHOICES, given_model
    from zoo.errors import UserError

    if args.model is None or args.model in MODEL_CHOICES:
        return None
    if not args.model.endswith(".zip"):
        raise UserError(f"--model {args.model}: give best, final, checkpoint or a model FILE.zip")
    if args.run is not None or args.exp_id is not None or args.pretrained is not None:
        raise UserError("--model FILE.zip plays that file; leave out --run, --exp-id, --pretrained")
    return given_model(Path(args.model), args.algo, args.env)


def _shipped_model(args: argparse.Namespace) -> ChosenModel | None:
    """The shipped agent asked for with --pretrained, or the one of --algo/--env when the
    log folder has no run of them; None when a run of the user's is to play."""
    from zoo.enjoy import ChosenModel
    from zoo.envs import resolve_env
    from zoo.errors import UserError
    from zoo.pretrained import read_card, shipped_agent, shipped_agent_for
    from zoo.report import game_of
    from zoo.runs import numbered_runs

    if args.pretrained is not None:
        if args.run is not None or args.exp_id is not None or args.model is not None:
            raise UserError(
                "--pretrained plays a shipped agent; leave out --run, --exp-id, --model"
            )
        run = shipped_agent(args.pretrained)
        why = "Playing the shipped agent"
    elif (
        args.run is None
        and args.algo is not None
        and args.env is not None
        and args.exp_id is None
        and not numbered_runs(args.log_dir, args.algo, args.env)
    ):
        found = shipped_agent_for(args.algo, game_of(resolve_env(args.env).gym_id))
        if found is None:
            return None
        run = found
        why = f"No {args.algo} run of {args.env} in {args.log_dir}: playing the shipped agent"
    else:
        return None
    card = read_card(run)
    shown = card.get("evaluation", {}).get("sampled") or card.get("evaluation", {}).get("greedy")
    score = ""
    if isinstance(shown, dict) and shown.get("scores"):
        scores = shown["scores"]
        score = f", {sum(scores) / len(scores):.1f} over {len(scores)} whole games"
    print(f"{why} {run.path.name} (zoo's own {int(card.get('steps') or 0):,}-step run{score}; "
          f"model card: {run.path / 'card.yml'})")  # fmt: skip
    return ChosenModel(run, run.final_model, "shipped")


def _add_report(commands: argparse._SubParsersAction[_Parser]) -> None:
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
    report.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from zoo.errors import UserError
    from zoo.report import markdown, over_seeds, reference_table, run_scores, shipped_agent_scores

    if not args.log_dir.is_dir():
        raise UserError(f"{args.log_dir}: no such log folder; train a run first or give --log-dir")
    if args.episodes is not None and args.episodes < 1:
        raise UserError("--episodes must be at least 1")
    references = reference_table(args.references)
    evaluate = None
    if args.episodes is not None:
        episodes = args.episodes

        def evaluate(run_path: Path) -> tuple[list[float], str]:
            from zoo.enjoy import choose_model, play
            from zoo.runs import open_run

            try:
                chosen = choose_model(open_run(run_path), None)
            except UserError as error:
                return [], str(error).split(": ", 1)[-1]
            result = play(chosen, episodes, 0.0, 0, False, None, 15, lambda _: None)
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


def _add_plot(commands: argparse._SubParsersAction[_Parser]) -> None:
    from zoo.plot import PANELS, X_AXES
    from zoo.schema import SCHEMAS

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
    plot.add_argument("--x", choices=X_AXES, default="steps", help="x axis (default: steps)")
    plot.add_argument(
        "--window", type=int, default=100, help="games per moving average (default 100; 1: raw)"
    )
    plot.add_argument("--mean", action="store_true", help="mean ± std across runs of one env")
    plot.add_argument("--panels", nargs="+", choices=list(PANELS), default=[],
                      help="extra panels below the scores")  # fmt: skip
    plot.add_argument("--width", type=int, default=1200, help="pixels (default: 1200)")
    plot.add_argument("--height", type=int, default=800, help="pixels (default: 800)")
    plot.add_argument("--title", help="figure title (default: the envs and the smoothing)")
    plot.set_defaults(handler=_run_plot)


def _run_plot(args: argparse.Namespace) -> int:
    from zoo.errors import UserError
    from zoo.plot import PlotOptions, draw, load_run_curves
    from zoo.runs import find_run, numbered_runs, open_run, runs_found

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


TUNE_EPILOG = """\
each trial is a short zoo train run (same config, envs, callbacks) in
<log-dir>/tune/<study>/trials/; its evaluations go to Optuna for pruning and the objective is
the mean of its later half of evaluations (full games). The search space is
hyperparams/search_spaces.yml, entry by entry overridden by --search-space FILE.
examples:
  zoo tune --algo dqn --env Breakout --trials 50 --trial-steps 200000
  zoo tune --algo a2c --env Pong --trials 40 --trial-steps 500000 --workers 2
  zoo tune --algo dqn --env Breakout --trials 200 --trial-steps 200000 \\
      --storage postgresql://user@dbhost/optuna --study breakout-dqn   # on every machine
  zoo tune --algo dqn --env Breakout --report
"""


def _add_tune(commands: argparse._SubParsersAction[_Parser]) -> None:
    from zoo.hyperparameter_help import hyperparameter_epilog

    tune = commands.add_parser(
        "tune",
        help="search the epsilon schedule, n-step and learning-rate decay with Optuna",
        description="Tune hyperparameters with an Optuna study of short training runs.",
        epilog=TUNE_EPILOG + hyperparameter_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_options(tune)
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
    tune.set_defaults(handler=_run_tune)


def _run_tune(args: argparse.Namespace) -> int:
    from zoo.errors import UserError
    from zoo.train import resolve_device
    from zoo.tune import TuneSettings, prepare_study, run_workers
    from zoo.tune_report import open_report_study, write_report
    from zoo.tune_storage import journal_path, open_storage

    if args.seed is not None and args.seed < 0:
        raise UserError("--seed must be >= 0")
    if not args.report and (args.trials is None or args.trial_steps is None):
        raise UserError("tune needs --trials N and --trial-steps S (or --report)")
    settings = TuneSettings(
        algo=args.algo,
        env=args.env,
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
        workers=args.workers,
        search_space=args.search_space,
        hyperparams_file=args.hyperparams_file,
        overrides=tuple(args.set),
        preset=args.preset,
        timesteps=args.timesteps,
        n_envs=args.n_envs,
        log_dir=args.log_dir,
        device=resolve_device(args.device),
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        quiet=args.quiet,
        argv=tuple(sys.argv[2:]),
        gym_packages=tuple(args.gym_packages),
    )
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
            args.storage, settings.study_dir, 1, args.heartbeat_interval, args.grace_period
        )
    study = open_report_study(storage.storage, settings.study_name, storage.shown)
    env_name = settings.base_config().env.name
    for line in write_report(study, settings.study_dir, settings.algo, env_name):
        print(line)
    print(f"Dashboard: optuna-dashboard {storage.shown}")
    return EXIT_INTERRUPTED if interrupted else 0


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


def _add_benchmark(commands: argparse._SubParsersAction[_Parser]) -> None:
    from zoo.schema import SCHEMAS

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
    _add_gym_packages(bench)
    bench.set_defaults(handler=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
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
    say = _printer(args.quiet)
    interrupted = 0
    if not args.report:
        device = resolve_device(args.device)
        claim_grid_dir(grid, grid_dir)
        say(f"Benchmark {name}: {len(cells)} cell(s) in {grid_dir}")
        outcomes = run_cells(
            grid, grid_dir, [c.name for c in cells], args.eval_games, device, args.workers,
            args.quiet,
        )  # fmt: skip
        interrupted = next((o.exit_code for o in outcomes if o.exit_code), 0)
    elif not (grid_dir / "grid.yml").is_file():
        raise UserError(f"no benchmark {name} in {args.log_dir}; run it first without --report")
    else:
        claim_grid_dir(grid, grid_dir)  # checks that the folder holds this grid
    for path in write_results(grid_dir, name):
        say(f"Wrote {path}")
    if interrupted:
        say(f"Interrupted: run the same command again to continue ({grid_dir})")
    return interrupted


def _run_train(args: argparse.Namespace) -> int:
    # Imported here so that `zoo --help` stays fast.
    from zoo.errors import UserError
    from zoo.memory_admission import admit_replay_buffer
    from zoo.resume import init_weights_file, prepare_resume, without_random_phase
    from zoo.runs import discard_unstarted_run, open_run, start_run, training_lock
    from zoo.train import StartPoint, TrainOptions, progress_stream, resolve_device, train

    say = _printer(args.quiet)
    device = resolve_device(args.device)
    options = TrainOptions(
        device=device,
        progress_stream=progress_stream(args.quiet),
        say=say,
        command=tuple(sys.argv[1:]),
    )
    if args.resume is not None:
        _refuse_with_resume(args)
        if args.timesteps is not None and args.timesteps < 1:
            raise UserError("-n/--timesteps must be at least 1 (the run's new total)")
        run = open_run(args.resume)
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
    config = _config_from_args(args)
    start = StartPoint()
    if args.skip_random_phase:
        if args.init_from is None:
            raise UserError("--skip-random-phase goes with --init-from MODEL_OR_RUN")
        config = without_random_phase(config)
    if args.init_from is not None:
        start = StartPoint(init_weights=init_weights_file(args.init_from, options.warn))
    admit_replay_buffer(config, device)  # before anything is created
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
    except UserError:
        discard_unstarted_run(run)  # a fresh run that failed before its first step
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


def _refuse_with_resume(args: argparse.Namespace) -> None:
    """--resume continues a run with its own saved config; nothing may change it."""
    from zoo.errors import UserError
    from zoo.hyperparameter_help import given_flags

    given = [
        option
        for option, value in (
            ("--algo", args.algo),
            ("--env", args.env),
            ("--preset", args.preset),
            ("--set", args.set),
            ("--hyperparams-file", args.hyperparams_file),
            ("--init-from", args.init_from),
            ("--skip-random-phase", args.skip_random_phase or None),
        )
        if value not in (None, False, [])
    ] + given_flags(args, allowed=("n_timesteps",))
    if given:
        raise UserError(
            f"--resume continues a run with its saved config; {', '.join(given)} cannot be "
            "combined with it (only -n, --device, --quiet)"
        )


def _run_schedule(args: argparse.Namespace) -> int:
    from zoo.errors import UserError
    from zoo.schedule_plot import draw

    if not (100 <= args.width <= 10_000 and 100 <= args.height <= 10_000):
        raise UserError("--width and --height must be between 100 and 10000 pixels")
    config = _config_from_args(args)
    try:
        lines = draw(config, args.output, args.width, args.height)
    except OSError as error:
        raise UserError(f"cannot write {args.output}: {error.strerror}") from None
    for line in lines:
        print(line)
    print(f"Wrote {args.output}")
    return 0


def _run_envs(args: argparse.Namespace) -> int:
    from zoo.envs import atari_game_names

    names = atari_game_names()
    width = max(map(len, names)) + 2
    per_line = max(1, 100 // width)
    for start in range(0, len(names), per_line):
        print("".join(name.ljust(width) for name in names[start : start + per_line]).rstrip())
    print(
        f"\n{len(names)} games; add -ram for the RAM variant (SpaceInvaders-ram); full gymnasium ids work too."
    )
    return 0


def _printer(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say


def main(argv: Sequence[str] | None = None) -> int:
    from zoo.errors import UserError
    from zoo.interrupts import exit_code_of, treat_sigterm_as_ctrl_c
    from zoo.threads import prefer_sleeping_openmp_threads

    prefer_sleeping_openmp_threads()  # before any command imports PyTorch

    args = build_parser().parse_args(argv)
    treat_sigterm_as_ctrl_c()
    try:
        if getattr(args, "gym_packages", None):
            from zoo.gym_packages import import_gym_packages

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
