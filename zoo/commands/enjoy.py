"""`zoo enjoy`: play whole games with a trained model, in a window or into a video."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.commands.common import Parser, Subparsers, log_dir
from zoo.commands.options import GYM_PACKAGES
from zoo.schema.keys import SCHEMAS

if TYPE_CHECKING:
    from zoo.results.enjoy import ChosenModel
    from zoo.runs.folders import Run


def add_parser(commands: Subparsers[Parser]) -> argparse.ArgumentParser:
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
    GYM_PACKAGES.add_to(enjoy)
    return enjoy


def run(args: argparse.Namespace) -> int:
    from zoo.core.errors import UserError
    from zoo.results.enjoy import (
        check_record_target,
        choose_model,
        display_available,
        play,
        summary,
    )

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
        chosen,
        episodes=args.episodes,
        epsilon=args.epsilon,
        seed=args.seed,
        render=render,
        record=args.record,
        fps=args.fps,
        say=print,
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
    from zoo.core.errors import UserError
    from zoo.envs.stack import resolve_env

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
    from zoo.core.errors import UserError
    from zoo.results.enjoy import choose_model
    from zoo.runs.folders import find_run, open_run

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
    from zoo.core.errors import UserError
    from zoo.results.enjoy import MODEL_CHOICES, given_model

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
    from zoo.core.errors import UserError
    from zoo.envs.stack import game_of, resolve_env
    from zoo.results.enjoy import ChosenModel
    from zoo.results.pretrained import read_card, shipped_agent, shipped_agent_for
    from zoo.runs.folders import numbered_runs

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
    steps = int(card.get("steps") or 0)
    trained = f"{steps:,}-step run"
    if card.get("planned_steps"):  # an unfinished run's newest checkpoint
        trained = f"run, stopped at step {steps:,} of {int(card['planned_steps']):,}"
    print(f"{why} {run.path.name} (zoo's own {trained}{score}; "
          f"model card: {run.path / 'card.yml'})")  # fmt: skip
    return ChosenModel(run, run.final_model, "shipped")
