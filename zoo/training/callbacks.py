"""Training callbacks: progress bar, per-episode scalars, step-based logging, checkpoints."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from tqdm import tqdm

from zoo.runs.tracking import track_scalars


class ProgressBarCallback(BaseCallback):
    """Steps done/total, steps per second, ETA and the mean score of the last 100 games."""

    def __init__(self, total_timesteps: int, stream: IO[str], refresh_seconds: float = 1.0) -> None:
        super().__init__()
        self.total_timesteps = total_timesteps
        self.stream = stream
        self.refresh_seconds = refresh_seconds
        self._bar: tqdm[Any] | None = None
        self._last_refresh = 0.0

    def _on_training_start(self) -> None:
        self._bar = tqdm(
            total=self.total_timesteps,
            initial=self.num_timesteps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            file=self.stream,
            smoothing=0.1,
        )

    def _on_step(self) -> bool:
        assert self._bar is not None
        self._bar.update(self.num_timesteps - self._bar.n)
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_seconds:
            self._last_refresh = now
            self._show_score()
        return True

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self.num_timesteps - self._bar.n)
            self._show_score()
            self._bar.close()
            self._bar = None

    def _show_score(self) -> None:
        scores = [info["r"] for info in self.model.ep_info_buffer or []]
        if scores and self._bar is not None:
            self._bar.set_postfix_str(
                f"score {np.mean(scores):.1f} ({len(scores)} games)", refresh=False
            )


class EpisodeScalarsCallback(BaseCallback):
    """Writes each finished game's score and length to TensorBoard at the step it ended,
    and the mean training-episode reward as the agent sees it.

    SB3 only logs a running mean; one point per game shows the spread. The Monitor sits below
    the life-loss and reward-clipping wrappers, so `episode/score` and SB3's
    `rollout/ep_rew_mean` are full-game, unclipped scores (all lives), the scale of the
    evaluation. The agent's own episodes end at each lost life with clipped rewards:
    `rollout/life_reward_mean` is their mean over the last 100, on that scale.
    """

    _writer: Any = None

    def __init__(self, window: int = 100) -> None:
        super().__init__()
        self.window = window
        self._running: np.ndarray | None = None
        self._finished: deque[float] = deque(maxlen=window)

    def _on_training_start(self) -> None:
        self._writer = next(
            (
                f.writer
                for f in self.logger.output_formats
                if isinstance(f, TensorBoardOutputFormat)
            ),
            None,
        )

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals.get("rewards", []), dtype=np.float64)
        dones = np.asarray(self.locals.get("dones", []), dtype=bool)
        if self._running is None or self._running.shape != rewards.shape:
            self._running = np.zeros_like(rewards)
        self._running += rewards
        for index in np.flatnonzero(dones):
            self._finished.append(float(self._running[index]))
            self._running[index] = 0.0
        if self._finished:
            self.logger.record("rollout/life_reward_mean", float(np.mean(self._finished)))
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is None:
                continue
            scalars = {"episode/score": float(episode["r"]), "episode/length": float(episode["l"])}
            track_scalars(self.logger, scalars, self.num_timesteps)
            if self._writer is not None:
                for tag, value in scalars.items():
                    self._writer.add_scalar(tag, value, self.num_timesteps)
        return True


class StopOnMeanScoreCallback(BaseCallback):
    """Stops training once the last `window` full games average at least `threshold`."""

    def __init__(self, threshold: float, window: int = 100) -> None:
        super().__init__()
        self.threshold = threshold
        self.window = window
        self.reached_at: int | None = None

    def _on_step(self) -> bool:
        if not any("episode" in info for info in self.locals.get("infos", [])):
            return True
        scores = [info["r"] for info in list(self.model.ep_info_buffer or [])[-self.window :]]
        if len(scores) >= self.window and float(np.mean(scores)) >= self.threshold:
            self.reached_at = self.num_timesteps
            return False
        return True


class StepLoggingCallback(BaseCallback):
    """Writes the training metrics every `every` global steps, between two rollouts.

    SB3 writes them every few episodes, whose ends depend on the games played; logging by
    global step gives a resumed run the very same TensorBoard steps as an uninterrupted one.
    """

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.num_timesteps // self.every > self._last // self.every:
            self._dump()

    def _on_training_end(self) -> None:
        if self.num_timesteps != self._last:
            self._dump()  # the last row: the run's state where it stopped

    def _dump(self) -> None:
        self._last = self.num_timesteps
        self.model.dump_logs()

    def _on_step(self) -> bool:
        return True


class PeriodicCheckpointCallback(BaseCallback):
    """Saves a checkpoint at the first rollout boundary past every `save_freq` global steps.

    Between two rollouts every transition is stored and every gradient step done, so a
    checkpoint is a clean point to continue from.
    """

    def __init__(self, save: Callable[[], object], save_freq: int) -> None:
        super().__init__()
        self.save = save
        self.save_freq = save_freq
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        if (
            self.save_freq > 0
            and self.num_timesteps // self.save_freq > self._last // self.save_freq
        ):
            self._last = self.num_timesteps
            self.save()

    def _on_step(self) -> bool:
        return True
