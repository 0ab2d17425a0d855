"""Training callbacks: a live progress bar and per-episode TensorBoard scalars."""

from __future__ import annotations

import time
from typing import IO, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from tqdm import tqdm


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
    _writer: Any = None

    """Writes each finished game's score and length to TensorBoard at the step it ended.

    SB3 only logs a running mean at its log interval; one point per game shows the spread.
    The Monitor sits below the life-loss and reward-clipping wrappers, so these are
    full-game, unclipped scores.
    """

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
        if self._writer is None:
            return True
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self._writer.add_scalar("episode/score", episode["r"], self.num_timesteps)
                self._writer.add_scalar("episode/length", episode["l"], self.num_timesteps)
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
