"""Evaluation plays whole games with unclipped scores; results reach the run folder."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import SHORT_DQN
from zoo.algorithms.model_loading import load_model
from zoo.config.config import build_config
from zoo.envs.stack import make_eval_env
from zoo.runs.evaluation import play_evaluation_games

Zoo = Callable[..., subprocess.CompletedProcess[str]]


class LivesWatcher:
    """Stands in for a model: random actions, and the lives ALE reports before each one."""

    def __init__(self, env: Any, n_actions: int) -> None:
        self.action_space = spaces.Discrete(n_actions)
        self.ale = env.envs[0].unwrapped.ale
        self.monitor = _monitor_of(env.envs[0])
        self.lives: list[int] = []
        self.frame_rewards: list[float] = []  # the raw per-frame rewards of the game so far

    def predict(self, observation: Any, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        self.lives.append(int(self.ale.lives()))
        if self.monitor.rewards:
            self.frame_rewards = list(self.monitor.rewards)
        return np.zeros(len(observation), dtype=np.int64), None


def _monitor_of(env: Any) -> Monitor:
    while not isinstance(env, Monitor):
        env = env.env
    return env


def _eval_env(game: str, max_frames: int = 108_000) -> Any:
    config = build_config("dqn", game, overrides=["seed=0"])
    return make_eval_env(config.env, config.env_settings(), seed=7, max_frames=max_frames)


def test_breakout_evaluation_games_last_all_five_lives() -> None:
    env = _eval_env("Breakout")
    watcher = LivesWatcher(env, n_actions=4)
    scores, lengths = play_evaluation_games(watcher, env, episodes=2, eval_epsilon=1.0, seed=0)  # type: ignore[arg-type]
    env.close()
    assert len(scores) == 2
    # A counted game runs through every life: ALE reported 5, 4, 3, 2 and 1 lives left
    # (training episodes end at each of those losses).
    assert {5, 4, 3, 2, 1} <= set(watcher.lives)
    # Lengths are emulator frames of whole games: each life of random play takes well over
    # the 4-frame skip times a few dozen agent steps.
    assert all(length > 5 * 4 * 20 for length in lengths)


def test_space_invaders_evaluation_scores_are_unclipped() -> None:
    env = _eval_env("SpaceInvaders")
    watcher = LivesWatcher(env, n_actions=6)
    scores, _ = play_evaluation_games(watcher, env, episodes=1, eval_epsilon=1.0, seed=0)  # type: ignore[arg-type]
    env.close()
    # The raw emulator paid 5 to 30 points per invader; the score is their sum (up to the
    # last action's frames), not the number of rewarded frames that clipping would give.
    paid = [reward for reward in watcher.frame_rewards if reward != 0]
    assert paid and min(paid) >= 5
    assert scores[0] >= sum(paid) > len(paid)
    assert scores[0] % 5 == 0


def test_the_step_cap_ends_a_stuck_game() -> None:
    env = _eval_env("Breakout", max_frames=400)  # NOOP forever: the ball is never launched
    watcher = LivesWatcher(env, n_actions=4)  # only after the first FIRE; a life loss re-FIREs
    _, lengths = play_evaluation_games(watcher, env, episodes=1, eval_epsilon=0.0, seed=0)  # type: ignore[arg-type]
    env.close()
    assert lengths == [400]


@pytest.mark.parametrize("game", ["Breakout", "Breakout-ram"])
def test_a_cap_above_108000_frames_reaches_ale(game: str) -> None:
    """ALE ends a game at its own max_num_frames_per_episode (108,000 in the v4 ids) whatever
    the TimeLimit says: the evaluation's cap must be ALE's too."""
    env = _eval_env(game, max_frames=200_000)
    ale = env.envs[0].unwrapped.ale
    env.close()
    assert ale.getInt("max_num_frames_per_episode") == 200_000


@pytest.mark.slow
def test_training_writes_evaluations_best_model_and_stops_at_reward(
    in_process: Zoo, tmp_path: Path
) -> None:
    result = in_process(
        "train", "--algo", "dqn", "--env", "CartPole-v1", "--seed", "2", "-n", "20000",
        "--stop-at-reward", "60", "--set", "eval_freq=1000", "--set", "eval_episodes=3",
        "--set", "eval_epsilon=0.05",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / "dqn" / "CartPole-v1_1"
    with open(run_dir / "evaluations.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows] == [1000 * (i + 1) for i in range(len(rows))]
    last = rows[-1]
    assert float(last["mean"]) >= 60 and all(float(row["mean"]) < 60 for row in rows[:-1])
    assert "Stopped early: the evaluation at step" in result.stdout
    assert len(last["scores"].split()) == len(last["lengths"].split()) == 3
    assert float(last["eval_epsilon"]) == 0.05 and last["epsilon"] and last["wall_time"]
    assert load_model(run_dir / "final_model.zip").num_timesteps == int(last["step"])
    assert load_model(run_dir / "best_model.zip").num_timesteps == int(last["step"])
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/mean_score")] == [int(r["step"]) for r in rows]


@pytest.mark.slow
def test_training_logs_full_game_scores_next_to_life_rewards(
    in_process: Zoo, tmp_path: Path
) -> None:
    result = in_process("train", "--algo", "dqn", "--env", "Breakout", "-n", "1000", "--seed", "1",
                        "--preset", "sb3_benchmark", *SHORT_DQN,
                        "--set", "exploration={type: constant, value: 1.0}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    with open(run_dir / "progress.csv", newline="") as file:
        row = list(csv.DictReader(file))[-1]
    full_game, per_life = float(row["rollout/ep_rew_mean"]), float(row["rollout/life_reward_mean"])
    # Random play: a game is five lives and its score the sum of their rewards (1 per
    # low brick, so clipping changes little), so the full-game mean is the larger one.
    assert full_game > per_life >= 0
