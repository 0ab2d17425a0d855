"""`record_every` (`--record-every N`): one whole evaluation game recorded every N agent steps.

The recorder counts global agent steps as the evaluation does, and fires at the first env
step at or past each multiple of N, so a resumed run records at the very steps an
uninterrupted one does (and never again at the step of its checkpoint). Its game is played on
an env of its own, never the training envs, and draws nothing from the random number
generators training uses (their states are restored after it all the same): a run that
records trains exactly as one that does not. Off (0), no callback exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from zoo.config.config import Config
from zoo.core.errors import UserError
from zoo.core.interrupts import StopRequest
from zoo.envs.stack import make_eval_env
from zoo.runs.checkpoints import capture_rng_states, restore_rng_states
from zoo.runs.evaluation import EVAL_SEED_OFFSET, ActionChooser
from zoo.runs.folders import Run
from zoo.runs.videos import (
    RecordedGame,
    RecordingCancelled,
    VideoFile,
    forget_videos_after,
    real_time_fps,
    record_game,
    recording_render_mode,
    video_path,
)


class RecordingCallback(BaseCallback):
    """Every `every` global steps: one whole game, recorded as videos/step-<N>.<format>. It
    is the game the evaluation at that step plays first: the same seed (`seed` + N), actions
    (greedy or sampled, `eval_epsilon`) and frame cap."""

    def __init__(
        self,
        make_env: Callable[[int], VecEnv],
        videos_dir: Path,
        every: int,
        seed: int,
        eval_epsilon: float,
        sampled: bool,
        video_format: str,
        fps: int,
        say: Callable[[str], None] = lambda _: None,
        warn: Callable[[str], None] = lambda _: None,
    ) -> None:
        super().__init__()
        self.make_env = make_env
        self.videos_dir = videos_dir
        self.every = every
        self.seed = seed
        self.eval_epsilon = eval_epsilon
        self.sampled = sampled
        self.video_format = video_format
        self.fps = fps
        self.say = say
        self.warn = warn
        self._last = 0
        # Set while training: a Ctrl-C abandons the game being recorded.
        self.cancel_when: StopRequest | None = None

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps // self.every > self._last // self.every:
            self._last = self.num_timesteps
            self.record()
        return True

    def record(self) -> RecordedGame | None:
        """The video of the game at this step; None when it was abandoned or not written."""
        step = self.num_timesteps
        path = video_path(self.videos_dir, step, self.video_format)
        seed = self.seed + step
        states = capture_rng_states()
        try:
            video = VideoFile(path, self.fps, label=f"record_every: {path}")
            try:
                env = self.make_env(seed)
            except BaseException:
                video.discard()
                raise
            chooser = ActionChooser(self.model, self.eval_epsilon, self.sampled)
            game = record_game(env, chooser, seed, video, self._stop_requested)
        except RecordingCancelled:
            return None  # StopWhenRequested ends training at the rollout boundary
        except UserError as error:  # a full disk: this video is lost, the training is not
            self.warn(f"warning: {error}; training goes on")
            return None
        finally:
            restore_rng_states(states)
        self.say(f"step {step:,}: recorded {path} (score {game.score:g}, {game.frames:,} frames)")
        return game

    def _stop_requested(self) -> bool:
        return self.cancel_when is not None and self.cancel_when.requested


def recording_callback(
    config: Config,
    run: Run,
    from_step: int | None,
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> RecordingCallback | None:
    """The recorder of a run whose config records, else None. `from_step`: the step a
    resumed run continues from; videos of later steps are removed, to be recorded again.
    (train() has refused an env that cannot draw its frames, with `check_recordable`.)"""
    every = config.run.record_every
    if every <= 0:
        return None
    settings = config.env_settings()
    if from_step is not None:
        forget_videos_after(run.videos_dir, from_step)
    evaluation = config.evaluation
    render_mode = recording_render_mode(config.env)

    def make_env(game_seed: int) -> VecEnv:
        return make_eval_env(config.env, settings, game_seed, evaluation.max_frames, render_mode)

    return RecordingCallback(
        make_env=make_env,
        videos_dir=run.videos_dir,
        every=every,
        seed=config.seed + EVAL_SEED_OFFSET,
        eval_epsilon=evaluation.epsilon,
        sampled=evaluation.sampled,
        video_format=config.run.record_format,
        fps=real_time_fps(config.env, settings),
        say=say,
        warn=warn,
    )
