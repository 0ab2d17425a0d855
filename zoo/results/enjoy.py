"""`zoo enjoy`: a trained agent plays whole games, in a window, into a video, or just scored.

The model comes from a run folder (the newest run of an algo and env by default) and plays
on the evaluation env of that run's config: the training preprocessing, all lives, the
unclipped score. Videos hold the colour screen a person sees, one frame per agent step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import set_random_seed

from zoo.algorithms.model_loading import TRAINED_ON, algorithm_of, load_algorithm
from zoo.algorithms.registry import ALGORITHMS
from zoo.config.config import Config, build_config
from zoo.core.errors import UserError
from zoo.envs.stack import make_eval_env
from zoo.runs import rl_zoo3_runs
from zoo.runs.checkpoints import newest_checkpoint
from zoo.runs.evaluation import play_evaluation_games
from zoo.runs.folders import Run
from zoo.runs.videos import VIDEO_SUFFIXES, VideoFile, recording_render_mode, screen

MODEL_CHOICES = ("best", "final", "checkpoint")


@dataclass(frozen=True)
class ChosenModel:
    run: Run | None  # None: a model zip from no run folder, played with `config`
    path: Path
    kind: str  # best, final, checkpoint, given (--model FILE.zip) or shipped
    config: Config | None = None


def choose_model(run: Run, which: str | None) -> ChosenModel:
    """The requested model of a run; by default the best, else the final, else a checkpoint."""
    order = [which] if which is not None else list(MODEL_CHOICES)
    for kind in order:
        path = _model_path(run, kind)
        if path is not None:
            return ChosenModel(run, path, kind)
    wanted = f"{which} model" if which is not None else "best or final model and no checkpoint"
    raise UserError(f"{run.path} has no {wanted} yet; train it longer or pick another --model")


def _model_path(run: Run, kind: str) -> Path | None:
    if kind == "best":
        path = run.best_model
    elif kind == "final":
        path = run.final_model
    else:
        checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
        return checkpoint.model_file if checkpoint is not None else None
    return path if path.is_file() else None


def check_record_target(path: Path) -> None:
    """Refuse, before any game is played, a --record name that cannot become a video file."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--record {path}: give a .mp4 or .gif file name")
    if path.is_dir():
        raise UserError(f"--record {path}: that is a folder; give the video another file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"--record {path}: {folder} is a file, not a folder")


def check_model_algo(chosen: ChosenModel, config: Config) -> type[BaseAlgorithm]:
    """The algorithm of the chosen zip, refused when it is not the run's (a zip copied into
    the wrong run folder would play on another algo's env settings)."""
    algorithm = algorithm_of(chosen.path)
    if algorithm is not ALGORITHMS.get(config.algo):
        names = {cls: name for name, cls in ALGORITHMS.items()}
        where = f"{chosen.run.path} is a run of" if chosen.run is not None else "--algo is"
        raise UserError(
            f"{chosen.path} is a model of {names.get(algorithm, algorithm.__name__)}, but "
            f"{where} {config.algo}; that zip does not belong to this run"
        )
    return algorithm


def given_model(path: Path, algo: str | None, env: str | None) -> ChosenModel:
    """`--model FILE.zip`: any SB3 model zip. In a run folder (zoo's or rl_zoo3's) it plays
    with that run's config; elsewhere with zoo's settings for --env and --algo (by default
    the algorithm that saved the zip)."""
    from zoo.runs.folders import open_run

    if not path.is_file():
        raise UserError(f"--model {path}: no such model file")
    folder = path.parent
    if (folder / "run.yml").is_file() or rl_zoo3_runs.is_run_folder(folder):
        return ChosenModel(open_run(folder), path, "given")
    if env is None:
        raise UserError(f"--model {path}: give --env too (the zip does not name its env)")
    names = {cls: name for name, cls in ALGORITHMS.items()}
    config = build_config(algo or names[algorithm_of(path)], env)
    return ChosenModel(None, path, "given", config)


def chosen_config(chosen: ChosenModel) -> Config:
    if chosen.config is not None:
        return chosen.config
    if chosen.run is None:
        raise UserError(f"{chosen.path}: no run and no settings to play it with")
    return run_config(chosen.run)


def run_config(run: Run) -> Config:
    info = run.read_info()
    return build_config(str(info["algo"]), str(info["env"]), hyperparams_file=run.config_file)


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@dataclass(frozen=True)
class PlayResult:
    scores: list[float]
    lengths: list[int]
    frames_recorded: int


def play(
    chosen: ChosenModel,
    episodes: int,
    epsilon: float,
    seed: int,
    render: bool,
    record: Path | None,
    fps: int,
    say: Callable[[str], None],
) -> PlayResult:
    if record is not None:
        check_record_target(record)
    config = chosen_config(chosen)
    algorithm = check_model_algo(chosen, config)
    env = make_eval_env(config.env, config.env_settings(), seed, config.evaluation.max_frames,
                        _render_mode(config, render, record))  # fmt: skip
    where = f"{chosen.run.path} ({config.env.name})" if chosen.run else config.env.name
    try:
        # Spaces checked before the first step: a model of another game is one line.
        model = load_algorithm(algorithm, chosen.path, device="cpu", play_env=env,
                               env_name=where)  # fmt: skip
    except UserError:
        env.close()
        raise
    trained_on = getattr(model, TRAINED_ON, None)
    if isinstance(trained_on, str) and trained_on != config.env.name:
        say(f"note: {chosen.path} was trained on {trained_on}; it plays {config.env.name} here")
    # As the run's evaluations played: a greedy A2C or PPO agent can stall where it must serve.
    sampled = config.evaluation.sampled
    if sampled:
        set_random_seed(seed)  # the draws of SB3's sampling: the same games for the same seed
        say("Actions sampled from the policy (the run's eval_actions)")
    try:
        video = VideoFile(record, fps) if record is not None else None
    except UserError:
        env.close()
        raise

    def after_step(local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
        if video is not None:
            video.append(screen(env))
        episode = local_vars["info"].get("episode")
        if episode is not None:
            game = int(local_vars["episode_counts"][0]) + 1
            say(f"game {game}: score {episode['r']:g} ({int(episode['l']):,} frames)")

    try:
        scores, lengths = play_evaluation_games(
            model, env, episodes, epsilon, seed, callback=after_step, sampled=sampled
        )
    except KeyboardInterrupt:
        if video is not None:
            video.finish()  # the games played so far still make a video
        raise
    except BaseException:
        if video is not None:
            video.discard()
        raise
    finally:
        env.close()
    if video is not None:
        video.finish()
    return PlayResult(scores, lengths, video.frames if video is not None else 0)


def _render_mode(config: Config, render: bool, record: Path | None) -> str | None:
    if render and (config.env.is_atari or record is None):
        return "human"
    return recording_render_mode(config.env) if record is not None else None


def summary(scores: list[float]) -> str:
    values = np.asarray(scores, dtype=np.float64)
    return (
        f"{len(values)} games: mean {values.mean():g}, std {values.std():g}, "
        f"min {values.min():g}, max {values.max():g}"
    )
