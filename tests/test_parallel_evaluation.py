"""The games of one evaluation played side by side score exactly as games played alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo.config.config import Config, build_config
from zoo.core.errors import UserError
from zoo.envs.stack import make_eval_env
from zoo.runs.evaluation import ActionChooser, GameTable, play_evaluation_games
from zoo.training.model_setup import build_model

SEEDS = [11, 12, 13, 14, 15]
MAX_FRAMES = 2500  # short games: the point is that they match, not that they are long


def _setup(
    algo: str, game: str = "Breakout", overrides: tuple[str, ...] = ()
) -> tuple[Config, Callable[[int], VecEnv]]:
    fits = ["batch_size=128"] if algo == "ppo_lstm" else []  # one env's rollout of 128
    settings = ["seed=3", "vec_env=dummy", "n_envs=1", *fits, *overrides]
    config = build_config(algo, game, overrides=settings)

    def make_env(seed: int) -> VecEnv:
        return make_eval_env(config.env, config.env_settings(), seed, MAX_FRAMES)

    return config, make_env


def _model(config: Config, env: VecEnv) -> BaseAlgorithm:
    """An untrained model whose greedy action changes with the screen: with its small
    initial weights it would press one button all game and every seed would look alike."""
    model = build_model(config, env, "cpu")
    th.manual_seed(0)
    with th.no_grad():
        for parameter in model.policy.parameters():
            parameter.normal_(0, 0.5)
    return model


@pytest.mark.slow
def test_side_by_side_games_score_as_games_played_alone_on_fresh_envs() -> None:
    config, make_env = _setup("dqn")
    env = make_env(0)
    model = _model(config, env)
    alone = []
    for seed in SEEDS:  # the sequential evaluation: SB3's evaluate_policy, one env per game
        game_env = make_env(seed)
        alone.append(play_evaluation_games(model, game_env, 1, 0.0, seed))
        game_env.close()
    table = GameTable(make_env, seats=len(SEEDS))
    scores, lengths = table.play(ActionChooser(model, 0.0, sampled=False), SEEDS)
    env.close()
    assert scores == [s[0][0] for s in alone]
    assert lengths == [s[1][0] for s in alone]
    assert len(set(zip(scores, lengths, strict=True))) > 1  # different seeds, different games


@pytest.mark.slow
@pytest.mark.parametrize("terminal_on_life_loss", [False, True])
def test_a_recurrent_policys_games_side_by_side_score_as_games_played_alone(
    terminal_on_life_loss: bool,
) -> None:
    # ppo_lstm: each game carries its own LSTM state and starts it afresh at its start (and,
    # with terminal_on_life_loss, after each lost life), as SB3's evaluate_policy does.
    config, make_env = _setup(
        "ppo_lstm", overrides=(f"terminal_on_life_loss={terminal_on_life_loss}",)
    )
    env = make_env(0)
    model = _model(config, env)
    alone = []
    for seed in SEEDS:  # the sequential evaluation: SB3's evaluate_policy, one env per game
        game_env = make_env(seed)
        alone.append(play_evaluation_games(model, game_env, 1, 0.0, seed))
        game_env.close()
    table = GameTable(make_env, seats=len(SEEDS))
    scores, lengths = table.play(ActionChooser(model, 0.0, sampled=False), SEEDS)
    env.close()
    assert scores == [s[0][0] for s in alone]
    assert lengths == [s[1][0] for s in alone]
    assert len(set(zip(scores, lengths, strict=True))) > 1  # different seeds, different games


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "sampled", "epsilon"),
    [("dqn", False, 0.3), ("a2c", True, 0.0), ("ppo_lstm", True, 0.0), ("ppo_lstm", False, 0.2)],
)
def test_random_draws_belong_to_each_game_not_to_the_batch(
    algo: str, sampled: bool, epsilon: float
) -> None:
    config, make_env = _setup(algo)
    env = make_env(0)
    model = _model(config, env)
    choose = ActionChooser(model, epsilon, sampled=sampled)
    results = []
    for seats in (1, 2, len(SEEDS)):  # sequential, in waves, all at once
        table = GameTable(make_env, seats=seats)
        results.append(table.play(choose, SEEDS))
    env.close()
    assert all(result == results[0] for result in results)
    assert len(results[0][0]) == len(SEEDS)


@pytest.mark.slow
def test_a_table_abandoned_mid_game_plays_the_same_games_next_time() -> None:
    config, make_env = _setup("dqn")
    env = make_env(0)
    model = _model(config, env)
    choose = ActionChooser(model, 0.0, sampled=False)
    table = GameTable(make_env, seats=3)
    expected = table.play(choose, SEEDS)
    steps = [0]

    def cancel() -> None:
        steps[0] += 1
        if steps[0] == 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        table.play(choose, SEEDS, after_step=cancel)
    assert table.play(choose, SEEDS) == expected
    env.close()


def test_sampled_actions_need_a_policy_that_samples() -> None:
    config, make_env = _setup("dqn")
    env = make_env(0)
    model = build_model(config, env, "cpu")
    with pytest.raises(UserError, match="eval_actions sampled"):
        ActionChooser(model, 0.0, sampled=True)
    env.close()
