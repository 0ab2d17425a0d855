"""Evaluation on full games: all lives, unclipped score, a step cap, greedy or epsilon-greedy.

The evaluation env has the training preprocessing (no-op starts, frame skip, 84x84, frame
stack, a lost life still resets with FIRE as in training) and SB3's Monitor below it, so a
counted episode is a whole game scored as the papers report it. Results go to TensorBoard
(`eval/*`), to `evaluations.csv` in the run folder and, on a new best mean, `best_model.zip`.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from zoo.atomic import atomic_write_text, write_atomically
from zoo.interrupts import StopRequest

EVALUATIONS_FILE = "evaluations.csv"
BEST_MODEL = "best_model.zip"
COLUMNS = (
    "step",
    "mean",
    "std",
    "min",
    "max",
    "mean_length",
    "scores",
    "lengths",
    "epsilon",
    "eval_epsilon",
    "wall_time",
    "eval_seconds",
)


@dataclass(frozen=True)
class EvaluationResult:
    step: int
    scores: Sequence[float]
    lengths: Sequence[int]
    epsilon: float | None  # the training epsilon at this step (DQN, QR-DQN)
    eval_epsilon: float
    seconds: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    def row(self) -> dict[str, Any]:
        scores = np.asarray(self.scores, dtype=np.float64)
        return {
            "step": self.step,
            "mean": f"{scores.mean():.6g}",
            "std": f"{scores.std():.6g}",
            "min": f"{scores.min():.6g}",
            "max": f"{scores.max():.6g}",
            "mean_length": f"{np.mean(self.lengths):.6g}",
            "scores": " ".join(f"{s:g}" for s in scores),
            "lengths": " ".join(str(int(n)) for n in self.lengths),
            "epsilon": "" if self.epsilon is None else f"{self.epsilon:.6g}",
            "eval_epsilon": f"{self.eval_epsilon:g}",
            "wall_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "eval_seconds": f"{self.seconds:.1f}",
        }


class EpsilonGreedy:
    """The model's greedy action, replaced by a random one with probability `epsilon`."""

    def __init__(self, model: BaseAlgorithm, epsilon: float, seed: int) -> None:
        self.model = model
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)
        assert isinstance(model.action_space, spaces.Discrete)
        self.n_actions = int(model.action_space.n)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        actions, state = self.model.predict(observation, state, episode_start, deterministic=True)
        if self.epsilon > 0:
            explore = self.rng.random(len(actions)) < self.epsilon
            actions = np.where(
                explore, self.rng.integers(self.n_actions, size=len(actions)), actions
            )
        return actions, state


def play_evaluation_games(
    model: BaseAlgorithm,
    env: VecEnv,
    episodes: int,
    eval_epsilon: float,
    seed: int,
    callback: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Scores and lengths of `episodes` full games (Monitor episodes) on `env`; `callback`
    sees SB3's evaluation loop after every step."""
    scores, lengths = evaluate_policy(
        EpsilonGreedy(model, eval_epsilon, seed),
        env,
        n_eval_episodes=episodes,
        deterministic=True,
        return_episode_rewards=True,
        warn=False,
        callback=callback,
    )
    return [float(s) for s in scores], [int(n) for n in lengths]  # type: ignore[union-attr]


class EvaluationLog:
    """`evaluations.csv`: one row per evaluation, appended and flushed to disk at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as file:
            return [row for row in csv.DictReader(file) if row.get("step", "").isdigit()]

    def best_mean(self) -> float | None:
        means = [float(row["mean"]) for row in self.rows() if row.get("mean")]
        return max(means) if means else None

    def append(self, row: dict[str, Any]) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
            file.flush()
            os.fsync(file.fileno())

    def keep_until(self, step: int) -> None:
        """Drop rows after `step` (a resumed run continues from its checkpoint there)."""
        if not self.path.is_file():
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(row for row in self.rows() if int(row["step"]) <= step)
        atomic_write_text(self.path, buffer.getvalue())


class EvaluationCancelled(Exception):
    """Ctrl-C during an evaluation: its games are abandoned and nothing of it is written."""


class EvaluationCallback(BaseCallback):
    """Every `eval_freq` global steps: play full games, log them, keep the best model and
    stop training once the mean reaches `stop_at_reward`."""

    def __init__(
        self,
        make_env: Callable[[], VecEnv],
        run_path: Path,
        eval_freq: int,
        episodes: int,
        eval_epsilon: float,
        seed: int,
        stop_at_reward: float | None = None,
        best_mean: float | None = None,
        announce: Callable[[str], None] = lambda _: None,
        on_result: Callable[[BaseAlgorithm, EvaluationResult], bool] | None = None,
    ) -> None:
        super().__init__()
        self.make_env = make_env
        self.log = EvaluationLog(run_path / EVALUATIONS_FILE)
        self.best_model = run_path / BEST_MODEL
        self.eval_freq = eval_freq
        self.episodes = episodes
        self.eval_epsilon = eval_epsilon
        self.seed = seed
        self.stop_at_reward = stop_at_reward
        self.best_mean = best_mean
        self.announce = announce
        self.on_result = on_result
        self.reached: EvaluationResult | None = None
        self.stopped_by_listener: EvaluationResult | None = None
        self._env: VecEnv | None = None
        self._last = 0
        # Set while training: a Ctrl-C abandons the evaluation in progress.
        self.cancel_when: StopRequest | None = None

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps // self.eval_freq <= self._last // self.eval_freq:
            return True
        self._last = self.num_timesteps
        try:
            result = self.evaluate()
        except EvaluationCancelled:
            return False
        if self.on_result is not None and not self.on_result(self.model, result):
            self.stopped_by_listener = result
            return False
        if self.stop_at_reward is not None and result.mean >= self.stop_at_reward:
            self.reached = result
            return False
        return True

    def evaluate(self) -> EvaluationResult:
        if self._env is None:
            self._env = self.make_env()
        started = time.monotonic()
        scores, lengths = play_evaluation_games(
            self.model,
            self._env,
            self.episodes,
            self.eval_epsilon,
            self.seed + self.num_timesteps,
            callback=self._cancel_if_requested,
        )
        epsilon = getattr(self.model, "exploration_rate", None)
        result = EvaluationResult(
            step=self.num_timesteps,
            scores=scores,
            lengths=lengths,
            epsilon=None if epsilon is None else float(epsilon),
            eval_epsilon=self.eval_epsilon,
            seconds=time.monotonic() - started,
        )
        self.log.append(result.row())
        self._write_scalars(result)
        if self.best_mean is None or result.mean > self.best_mean:
            self.best_mean = result.mean
            write_atomically(self.best_model, self.model.save)
        self.announce(
            f"step {result.step:,}: evaluation mean {result.mean:g} over {len(scores)} games "
            f"(best {self.best_mean:g})"
        )
        return result

    def _cancel_if_requested(self, _locals: dict[str, Any], _globals: dict[str, Any]) -> None:
        if self.cancel_when is not None and self.cancel_when.requested:
            raise EvaluationCancelled

    def _write_scalars(self, result: EvaluationResult) -> None:
        writer = tensorboard_writer(self.logger)
        if writer is None:
            return
        scores = np.asarray(result.scores)
        writer.add_scalar("eval/mean_score", scores.mean(), result.step)
        writer.add_scalar("eval/std_score", scores.std(), result.step)
        writer.add_scalar("eval/max_score", scores.max(), result.step)
        writer.add_scalar("eval/mean_length", float(np.mean(result.lengths)), result.step)
        writer.flush()

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def tensorboard_writer(logger: Any) -> Any:
    """The SummaryWriter behind an SB3 logger, or None when it writes no TensorBoard."""
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    for output in logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            return output.writer
    return None
