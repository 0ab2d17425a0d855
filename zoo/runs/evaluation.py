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
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from zoo.core.atomic import atomic_write_text, write_atomically
from zoo.core.errors import UserError
from zoo.core.interrupts import StopRequest
from zoo.core.textfiles import read_text_file
from zoo.runs.acting import ActionChooser, EpsilonGreedy, GameMemory
from zoo.runs.tracking import track_scalars

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
# The columns that readers of the file (report, plot) need.
READ_COLUMNS = ("step", "mean", "std", "scores")
# Evaluation games get seeds of their own, away from the training envs': game i of the
# evaluation at step N has seed seed + EVAL_SEED_OFFSET + N + i.
EVAL_SEED_OFFSET = 1_000_003
# Games of one evaluation played side by side: one env each and one network call for all.
MAX_PARALLEL_GAMES = 32


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


def play_evaluation_games(
    model: BaseAlgorithm,
    env: VecEnv,
    episodes: int,
    eval_epsilon: float,
    seed: int,
    callback: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    sampled: bool = False,
) -> tuple[list[float], list[int]]:
    """Scores and lengths of `episodes` full games (Monitor episodes) played one after
    another on `env`; `callback` sees SB3's evaluation loop after every step."""
    scores, lengths = evaluate_policy(
        EpsilonGreedy(model, eval_epsilon, seed, sampled),
        env,
        n_eval_episodes=episodes,
        deterministic=True,
        return_episode_rewards=True,
        warn=False,
        callback=callback,
    )
    return [float(s) for s in scores], [int(n) for n in lengths]  # type: ignore[union-attr]


@dataclass
class _Seat:
    """A game at the table: its index, its env, its last observation, its random numbers and
    what a recurrent policy remembers of it."""

    game: int
    env: VecEnv
    observation: np.ndarray
    rng: np.random.Generator
    memory: GameMemory


class GameTable:
    """Plays the games of an evaluation side by side: each game on a new single-game env made
    with the game's own seed, and one network call per step for every game still running.
    A game is exactly the game a lone env with that seed plays (whole game, all lives,
    unclipped Monitor score, the env's step cap), whatever else shares the table."""

    def __init__(self, make_env: Callable[[int], VecEnv], seats: int = MAX_PARALLEL_GAMES) -> None:
        self.make_env = make_env
        self.seats = max(1, seats)

    def play(
        self,
        choose: ActionChooser,
        seeds: Sequence[int],
        after_step: Callable[[], None] | None = None,
    ) -> tuple[list[float], list[int]]:
        """Scores and frame lengths of one whole game per seed, in the order of `seeds`."""
        scores = [0.0] * len(seeds)
        lengths = [0] * len(seeds)
        waiting = list(range(len(seeds)))[::-1]
        seated: dict[int, _Seat] = {}

        def seat_next(seat: int) -> None:
            game = waiting.pop()
            # A new env per game: a used one would not restart from the seed (after a game
            # over, SB3's life-loss wrapper has already begun the next game).
            env = self.make_env(seeds[game])
            rng = np.random.default_rng(seeds[game])
            seated[seat] = _Seat(game, env, np.asarray(env.reset()), rng, GameMemory())

        try:
            for seat in range(min(self.seats, len(seeds))):
                seat_next(seat)
            while seated:
                playing = sorted(seated.items(), key=lambda item: item[0])
                actions = choose(
                    np.concatenate([place.observation for _, place in playing]),
                    [place.rng for _, place in playing],
                    [place.memory for _, place in playing],
                )
                for (seat, place), action in zip(playing, actions, strict=True):
                    observation, _, dones, infos = place.env.step(np.array([action]))
                    episode = infos[0].get("episode")
                    if episode is None:
                        place.observation = np.asarray(observation)
                        place.memory.episode_start = bool(dones[0])  # a lost life, say
                        continue
                    scores[place.game], lengths[place.game] = float(episode["r"]), int(episode["l"])
                    del seated[seat]
                    place.env.close()
                    if waiting:
                        seat_next(seat)
                if after_step is not None:
                    after_step()
        finally:
            for place in seated.values():
                place.env.close()
        return scores, lengths


class EvaluationLog:
    """`evaluations.csv`: one row per evaluation, appended and flushed to disk at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as file:
            return [row for row in csv.DictReader(file) if row.get("step", "").isdigit()]

    def checked_rows(self) -> list[dict[str, str]]:
        """The rows, each with a readable step, mean, std and scores; a UserError naming the
        file and what is wrong with it when it was damaged or edited by hand."""
        if not self.path.is_file():
            return []
        text = read_text_file(self.path, "evaluations file")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [name for name in READ_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            raise UserError(f"{self.path}: malformed, no {names} column{'s' * (len(missing) > 1)}")
        rows = []
        for row in reader:
            try:
                int(row["step"])
                for name in ("mean", "std"):
                    float(row[name])
                [float(score) for score in row["scores"].split()]
            except (TypeError, ValueError, AttributeError):
                raise UserError(
                    f"{self.path}: malformed, line {reader.line_num} holds no readable "
                    "step, mean, std and scores"
                ) from None
            rows.append(row)
        return rows

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
    stop training once the mean reaches `stop_at_score`."""

    def __init__(
        self,
        make_env: Callable[[int], VecEnv],
        run_path: Path,
        eval_freq: int,
        episodes: int,
        eval_epsilon: float,
        seed: int,
        sampled: bool = False,
        stop_at_score: float | None = None,
        best_mean: float | None = None,
        announce: Callable[[str], None] = lambda _: None,
        on_result: Callable[[BaseAlgorithm, EvaluationResult], bool] | None = None,
    ) -> None:
        super().__init__()
        self.games = GameTable(make_env)
        self.sampled = sampled
        self.log = EvaluationLog(run_path / EVALUATIONS_FILE)
        self.best_model = run_path / BEST_MODEL
        self.eval_freq = eval_freq
        self.episodes = episodes
        self.eval_epsilon = eval_epsilon
        self.seed = seed
        self.stop_at_score = stop_at_score
        self.best_mean = best_mean
        self.announce = announce
        self.on_result = on_result
        self.reached: EvaluationResult | None = None
        self.stopped_by_listener: EvaluationResult | None = None
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
            return True  # StopWhenRequested ends training at the rollout boundary
        if self.on_result is not None and not self.on_result(self.model, result):
            self.stopped_by_listener = result
            return False
        if self.stop_at_score is not None and result.mean >= self.stop_at_score:
            self.reached = result
            return False
        return True

    def evaluate(self) -> EvaluationResult:
        started = time.monotonic()
        first_seed = self.seed + self.num_timesteps  # game i plays with seed first_seed + i
        scores, lengths = self.games.play(
            ActionChooser(self.model, self.eval_epsilon, self.sampled),
            [first_seed + game for game in range(self.episodes)],
            after_step=self._cancel_if_requested,
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

    def _cancel_if_requested(self) -> None:
        if self.cancel_when is not None and self.cancel_when.requested:
            raise EvaluationCancelled

    def _write_scalars(self, result: EvaluationResult) -> None:
        scores = np.asarray(result.scores)
        scalars = {
            "eval/mean_score": float(scores.mean()),
            "eval/std_score": float(scores.std()),
            "eval/max_score": float(scores.max()),
            "eval/mean_length": float(np.mean(result.lengths)),
        }
        track_scalars(self.logger, scalars, result.step)
        writer = tensorboard_writer(self.logger)
        if writer is None:
            return
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, result.step)
        writer.flush()


def tensorboard_writer(logger: Any) -> Any:
    """The SummaryWriter behind an SB3 logger, or None when it writes no TensorBoard."""
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    for output in logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            return output.writer
    return None
