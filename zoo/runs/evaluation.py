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
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv

from zoo.core.atomic import atomic_write_text, write_atomically
from zoo.core.errors import UserError
from zoo.core.interrupts import StopRequest
from zoo.core.textfiles import read_text_file
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


class EpsilonGreedy:
    """The model's greedy (or, with `sampled`, sampled) action, replaced by a random one
    with probability `epsilon`."""

    def __init__(
        self, model: BaseAlgorithm, epsilon: float, seed: int, sampled: bool = False
    ) -> None:
        self.model = model
        self.epsilon = epsilon
        self.sampled = sampled
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
        actions, state = self.model.predict(
            observation, state, episode_start, deterministic=not self.sampled
        )
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


class ActionChooser:
    """Actions for a batch of games from one network call: greedy, or sampled from the
    policy's distribution (actor-critic algos), then replaced by a random action with
    probability `epsilon`. Each game draws its random numbers from its own generator, so a
    game's actions do not depend on which other games share its batch."""

    def __init__(self, model: BaseAlgorithm, epsilon: float, sampled: bool) -> None:
        if sampled and not isinstance(model.policy, ActorCriticPolicy):
            raise UserError(
                f"eval_actions sampled needs a policy that samples its actions (a2c, ppo); "
                f"{type(model).__name__} acts greedily: use eval_actions greedy"
            )
        assert isinstance(model.action_space, spaces.Discrete)
        self.model = model
        self.epsilon = epsilon
        self.sampled = sampled
        self.n_actions = int(model.action_space.n)

    def __call__(self, observations: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        if self.sampled:
            actions = self._sample(observations, rngs)
        else:
            actions, _ = self.model.predict(observations, deterministic=True)
            actions = np.asarray(actions).reshape(-1)
        if self.epsilon > 0:
            for game, rng in enumerate(rngs):
                if rng.random() < self.epsilon:
                    actions[game] = rng.integers(self.n_actions)
        return actions

    def _sample(self, observations: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        policy = self.model.policy
        assert isinstance(policy, ActorCriticPolicy)
        with th.no_grad():
            tensor, _ = policy.obs_to_tensor(observations)
            distribution = policy.get_distribution(tensor)
            probabilities = distribution.distribution.probs.double().cpu().numpy()  # type: ignore[union-attr]
        cumulative = np.cumsum(probabilities, axis=1)
        draws = np.array([rng.random() for rng in rngs]) * cumulative[:, -1]
        actions = [
            int(np.searchsorted(row, u, side="right"))
            for row, u in zip(cumulative, draws, strict=True)
        ]
        return np.minimum(np.array(actions, dtype=np.int64), self.n_actions - 1)


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
        # seat -> (game, its env, its last observation, its random numbers)
        seated: dict[int, tuple[int, VecEnv, np.ndarray, np.random.Generator]] = {}

        def seat_next(seat: int) -> None:
            game = waiting.pop()
            # A new env per game: a used one would not restart from the seed (after a game
            # over, SB3's life-loss wrapper has already begun the next game).
            env = self.make_env(seeds[game])
            seated[seat] = (game, env, np.asarray(env.reset()), np.random.default_rng(seeds[game]))

        try:
            for seat in range(min(self.seats, len(seeds))):
                seat_next(seat)
            while seated:
                seats = sorted(seated)
                observations = np.concatenate([seated[seat][2] for seat in seats])
                actions = choose(observations, [seated[seat][3] for seat in seats])
                for seat, action in zip(seats, actions, strict=True):
                    game, env, _, rng = seated[seat]
                    observation, _, _, infos = env.step(np.array([action]))
                    episode = infos[0].get("episode")
                    if episode is None:
                        seated[seat] = (game, env, np.asarray(observation), rng)
                        continue
                    scores[game], lengths[game] = float(episode["r"]), int(episode["l"])
                    del seated[seat]
                    env.close()
                    if waiting:
                        seat_next(seat)
                if after_step is not None:
                    after_step()
        finally:
            for _, env, _, _ in seated.values():
                env.close()
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
