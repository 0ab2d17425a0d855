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
from stable_baselines3.common.utils import set_random_seed

from zoo.checkpoints import newest_checkpoint
from zoo.config import Config, build_config
from zoo.envs import make_eval_env
from zoo.errors import UserError
from zoo.evaluation import BEST_MODEL, play_evaluation_games
from zoo.models import load_model
from zoo.runs import FINAL_MODEL, Run

MODEL_CHOICES = ("best", "final", "checkpoint")
VIDEO_SUFFIXES = (".mp4", ".gif")


@dataclass(frozen=True)
class ChosenModel:
    run: Run
    path: Path
    kind: str  # best, final or checkpoint


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
        path = run.path / BEST_MODEL
    elif kind == "final":
        path = run.path / FINAL_MODEL
    else:
        checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
        return checkpoint.model_file if checkpoint is not None else None
    return path if path.is_file() else None


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
    if record is not None and record.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--record {record}: give a .mp4 or .gif file name")
    config = run_config(chosen.run)
    model = load_model(chosen.path, device="cpu")
    max_frames = int(config.hyperparams.get("eval_max_frames", 108_000))
    atari = config.env.is_atari
    render_mode = None
    if render and (atari or record is None):
        render_mode = "human"
    elif record is not None and not atari:
        render_mode = "rgb_array"  # other envs draw their frames only when asked to
    env = make_eval_env(config.env, config.env_settings(), seed, max_frames, render_mode)
    # As the run's evaluations played: a greedy A2C agent can stall where it must serve.
    sampled = config.hyperparams.get("eval_actions") == "sampled"
    if sampled:
        set_random_seed(seed)  # the draws of SB3's sampling: the same games for the same seed
        say("Actions sampled from the policy (the run's eval_actions)")
    writer = _video_writer(record, fps) if record is not None else None
    frames = 0

    def after_step(local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
        nonlocal frames
        if writer is not None:
            writer.append_data(_screen(env))
            frames += 1
        episode = local_vars["info"].get("episode")
        if episode is not None:
            game = int(local_vars["episode_counts"][0]) + 1
            say(f"game {game}: score {episode['r']:g} ({int(episode['l']):,} frames)")

    try:
        scores, lengths = play_evaluation_games(
            model, env, episodes, epsilon, seed, callback=after_step, sampled=sampled
        )
    finally:
        if writer is not None:
            writer.close()
        env.close()
    return PlayResult(scores, lengths, frames)


def _screen(env: Any) -> np.ndarray:
    """The colour screen of the (single) game as a person sees it, not the network input."""
    game = env.envs[0].unwrapped
    if hasattr(game, "ale"):
        return np.asarray(game.ale.getScreenRGB())
    return np.asarray(game.render())


def _video_writer(path: Path, fps: int) -> Any:
    import imageio.v2 as imageio

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".gif":
            return imageio.get_writer(path, mode="I", duration=1000 / fps, loop=0)
        # imageio-ffmpeg brings its own ffmpeg binary; 210x160 needs no resizing for H.264.
        return imageio.get_writer(path, fps=fps, macro_block_size=2, quality=7)
    except OSError as error:
        raise UserError(f"--record {path}: cannot write ({error})") from None


def summary(scores: list[float]) -> str:
    values = np.asarray(scores, dtype=np.float64)
    return (
        f"{len(values)} games: mean {values.mean():g}, std {values.std():g}, "
        f"min {values.min():g}, max {values.max():g}"
    )
