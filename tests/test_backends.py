"""Models trained on one env backend load, evaluate and play on the other; several envs
train DQN with the single env's number of gradient steps per agent step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy

from zoo.algorithms.model_loading import load_algorithm, load_model
from zoo.algorithms.registry import ALGORITHMS
from zoo.config.config import build_config
from zoo.envs.stack import make_eval_env, make_vec_env_for
from zoo.training.model_setup import build_model

SMALL = {
    "a2c": ["n_envs=2"],
    "ppo": ["n_envs=2", "n_steps=32", "batch_size=64", "n_epochs=1"],
    "dqn": ["n_envs=2", "buffer_size=500", "learning_starts=100", "network=dqn2013"],
}


def _trained(algo: str, vec_env: str, path: Path) -> Path:
    config = build_config(
        algo, "Breakout", overrides=["seed=0", f"vec_env={vec_env}", *SMALL[algo]]
    )
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    model = build_model(config, env, "cpu")
    model.learn(total_timesteps=300)
    model.save(path)
    env.close()
    return path


def _other_env(algo: str, vec_env: str):  # type: ignore[no-untyped-def]
    config = build_config(
        algo, "Breakout", overrides=["seed=1", f"vec_env={vec_env}", *SMALL[algo]]
    )
    return make_vec_env_for(config.env, config.env_settings(), config.seed)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["a2c", "dqn", "ppo"])
@pytest.mark.parametrize(("trained_on", "played_on"), [("ale", "sb3"), ("sb3", "ale")])
def test_models_move_between_backends(
    algo: str, trained_on: str, played_on: str, tmp_path: Path
) -> None:
    path = _trained(algo, trained_on, tmp_path / "model.zip")
    # loads with the other backend's env (SB3 checks that the spaces are the same) and trains on
    env = _other_env(algo, played_on)
    model: BaseAlgorithm = load_algorithm(ALGORITHMS[algo], path, env, "cpu")
    model.learn(total_timesteps=100, reset_num_timesteps=False)
    # plays a whole game there (sampled actions: an untrained greedy policy may never FIRE)
    scores, lengths = evaluate_policy(
        model, env, n_eval_episodes=1, deterministic=False, return_episode_rewards=True
    )
    assert len(scores) == 1 and np.asarray(lengths)[0] > 0  # whole games: the Monitor's
    env.close()
    # and evaluates on zoo's evaluation env, which is the SB3 stack
    config = build_config(algo, "Breakout", overrides=["seed=0"])
    eval_env = make_eval_env(config.env, config.env_settings(), seed=5, max_frames=4000)
    scores, _ = evaluate_policy(
        load_model(path, "cpu"), eval_env, n_eval_episodes=1, return_episode_rewards=True
    )
    assert len(scores) == 1
    eval_env.close()


def test_dqn_with_several_envs_keeps_gradient_steps_per_agent_step() -> None:
    updates = {}
    for n_envs in (1, 4):
        overrides = ["seed=0", f"n_envs={n_envs}", "buffer_size=1000", "learning_starts=200"]
        # CartPole with Atari's train_freq and gradient_steps: the count of updates is DQN's,
        # whatever the game (Breakout took minutes)
        config = build_config(
            "dqn", "CartPole-v1", overrides=[*overrides, "train_freq=4", "gradient_steps=1"]
        )
        env = make_vec_env_for(config.env, config.env_settings(), config.seed)
        model = build_model(config, env, "cpu")
        model.learn(total_timesteps=600)
        assert model.num_timesteps == 600
        updates[n_envs] = model._n_updates  # type: ignore[attr-defined]
        env.close()
    assert updates[1] == updates[4] == (600 - 200) // 4  # train_freq 4, gradient_steps 1
