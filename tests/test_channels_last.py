"""Channels-last convolution weights: the same network and numbers, kept through save and load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo.algorithms.model_loading import load_model
from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.training.model_setup import build_model

ALGOS = ["dqn", "qrdqn", "a2c", "ppo"]
SMALL = {
    "dqn": ["buffer_size=64", "learning_starts=0", "batch_size=8"],
    "qrdqn": ["buffer_size=64", "learning_starts=0", "batch_size=8", "policy_kwargs.n_quantiles=8"],
    "a2c": ["n_envs=1", "n_steps=8"],
    "ppo": ["n_envs=1", "n_steps=8", "batch_size=8"],
}


@pytest.fixture(scope="module")
def breakout_env() -> Iterator[VecEnv]:
    config = build_config("dqn", "Breakout", overrides=["vec_env=ale"])
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    yield env
    env.close()


def _model(algo: str, env: VecEnv, channels_last: bool) -> BaseAlgorithm:
    overrides = [*SMALL[algo], "seed=1", f"channels_last={str(channels_last).lower()}"]
    return build_model(build_config(algo, "Breakout", overrides=overrides), env, "cpu")


def _convolution_weights(model: BaseAlgorithm) -> list[th.Tensor]:
    weights = [
        module.weight for module in model.policy.modules() if isinstance(module, th.nn.Conv2d)
    ]
    assert weights, "a pixel policy has convolutions"
    return weights


def _is_channels_last(model: BaseAlgorithm) -> bool:
    layouts = {
        weight.is_contiguous(memory_format=th.channels_last) and not weight.is_contiguous()
        for weight in _convolution_weights(model)
    }
    assert len(layouts) == 1, "every convolution is in one layout"
    return layouts.pop()


def _outputs(model: BaseAlgorithm, observations: np.ndarray) -> th.Tensor:
    """Q-values, quantiles or action logits and values of a batch of observations."""
    tensor = model.policy.obs_to_tensor(observations)[0]
    with th.no_grad():
        if hasattr(model, "quantile_net"):
            return model.quantile_net(tensor)
        if hasattr(model, "q_net"):
            return model.q_net(tensor)
        logits = model.policy.get_distribution(tensor).distribution.logits
        return th.cat([logits, model.policy.predict_values(tensor)], dim=1)


def _observations(env: VecEnv, count: int = 6) -> np.ndarray:
    env.seed(5)
    frames = [env.reset()]
    rng = np.random.default_rng(0)
    for _ in range(count - 1):
        frames.append(env.step(rng.integers(env.action_space.n, size=env.num_envs))[0])  # type: ignore[attr-defined]
    return np.concatenate(frames)


# The Q-networks in the fast tier; A2C's and PPO's (7 s each on a busy machine) with the slow runs.
@pytest.mark.parametrize(
    "algo",
    [algo if "dqn" in algo else pytest.param(algo, marks=pytest.mark.slow) for algo in ALGOS],
)
def test_channels_last_is_the_same_network(algo: str, breakout_env: VecEnv) -> None:
    fast, plain = _model(algo, breakout_env, True), _model(algo, breakout_env, False)
    assert _is_channels_last(fast) and not _is_channels_last(plain)
    plain.policy.load_state_dict(fast.policy.state_dict())
    assert _is_channels_last(fast) and not _is_channels_last(plain)  # copies keep the layout
    observations = _observations(breakout_env)
    assert th.allclose(_outputs(fast, observations), _outputs(plain, observations), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
def test_channels_last_trains_like_the_contiguous_network(
    algo: str, breakout_env: VecEnv, tmp_path: Path
) -> None:
    fast, plain = _model(algo, breakout_env, True), _model(algo, breakout_env, False)
    plain.policy.load_state_dict(fast.policy.state_dict())
    # PPO: two rollouts (8 updates). In a third, rounding in the convolutions can flip one
    # sampled action, and from there the two runs play different games (seen on an Intel CPU).
    steps = 16 if algo == "ppo" else 48
    for model in (fast, plain):
        model.set_random_seed(7)
        model.learn(total_timesteps=steps)
    assert _is_channels_last(fast)
    for (name, a), b in zip(
        fast.policy.state_dict().items(), plain.policy.state_dict().values(), strict=True
    ):
        assert th.allclose(a, b, atol=1e-4), name
    # The optimizer state of a convolution takes the weight's layout.
    state = fast.policy.optimizer.state[_convolution_weights(fast)[0]]
    moments = [value for value in state.values() if th.is_tensor(value) and value.dim() == 4]
    assert moments and all(m.is_contiguous(memory_format=th.channels_last) for m in moments)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
def test_a_loaded_model_keeps_its_layout_and_trains_on(
    algo: str, breakout_env: VecEnv, tmp_path: Path
) -> None:
    fast = _model(algo, breakout_env, True)
    fast.learn(total_timesteps=16)
    fast.save(tmp_path / "fast.zip")
    plain = _model(algo, breakout_env, False)
    plain.save(tmp_path / "plain.zip")
    old = _model(algo, breakout_env, False)
    del old.channels_last  # type: ignore[attr-defined]  # a zip saved before the setting existed
    old.learn(total_timesteps=16)
    old.save(tmp_path / "old.zip")
    observations = _observations(breakout_env)
    for name, channels_last in (("fast", True), ("plain", False), ("old", True)):
        loaded = load_model(tmp_path / f"{name}.zip", device="cpu")
        assert _is_channels_last(loaded) is channels_last, name
        loaded.set_env(breakout_env)
        before = _outputs(loaded, observations)
        loaded.learn(total_timesteps=32, reset_num_timesteps=False)
        assert th.isfinite(_outputs(loaded, observations)).all()
        assert not th.equal(before, _outputs(loaded, observations)), f"{name} trained on"


def test_mlp_policies_are_left_alone() -> None:
    config = build_config("dqn", "SpaceInvaders-ram", overrides=["buffer_size=32"])
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    try:
        model = build_model(config, env, "cpu")
        assert config.hyperparams["channels_last"] is True
        assert all(p.is_contiguous() for p in model.policy.parameters())
    finally:
        env.close()
