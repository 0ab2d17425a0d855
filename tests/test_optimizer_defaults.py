"""zoo's optimizers are the ones SB3 builds from the same hyperparameters, but for the
differences listed in mixins.OPTIMIZER_DIFFERENCES_FROM_SB3 (the fused Adam kernel, which
takes the same steps)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch as th
from sb3_contrib import QRDQN, TRPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo.algorithms import registry
from zoo.algorithms.mixins import FUSED_ADAM_AVAILABLE, OPTIMIZER_DIFFERENCES_FROM_SB3
from zoo.config.config import Config, build_config
from zoo.config.layers import load_presets
from zoo.envs.stack import make_vec_env_for
from zoo.training.model_setup import build_model

SB3_ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "dqn": DQN,
    "qrdqn": QRDQN,
    "c51": DQN,  # zoo's C51 is SB3's DQN with a distributional policy
    "a2c": A2C,
    "ppo": PPO,
    "ppo_lstm": RecurrentPPO,
    "trpo": TRPO,
}
RL_ZOO3_PPO = Path(__file__).resolve().parent / "fixtures" / "rl_zoo3" / "ppo.yml"

CASES = [
    *((algo, env, []) for algo in SB3_ALGORITHMS for env in ("Breakout", "CartPole-v1")),
    ("a2c", "CartPole-v1", ["use_rms_prop=false"]),  # SB3's Adam for A2C
    ("ppo", "CartPole-v1", ["policy_kwargs.optimizer_kwargs.weight_decay=0.001"]),
    ("dqn", "CartPole-v1", ["policy_kwargs.optimizer_class=adamw"]),
]


def _config(algo: str, env: str, overrides: list[str], rl_zoo3_file: bool = False) -> Config:
    # a small replay buffer: the optimizer does not depend on its size
    small = ["buffer_size=1000", "learning_starts=0"] if algo in ("dqn", "qrdqn", "c51") else []
    return build_config(
        algo,
        env,
        hyperparams_file=RL_ZOO3_PPO if rl_zoo3_file else None,
        overrides=["seed=1", "vec_env=sb3", *small, *overrides],
    )


@pytest.fixture
def env_for() -> Iterator[Any]:
    envs: list[VecEnv] = []

    def make(config: Config) -> VecEnv:
        env = make_vec_env_for(config.env, config.env_settings(), seed=0)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def _sb3_model(config: Config, env: VecEnv) -> BaseAlgorithm:
    """The model SB3's own constructor builds from the config's SB3 hyperparameters."""
    algorithm = SB3_ALGORITHMS[config.algo]
    accepted = inspect.signature(algorithm.__init__).parameters
    kwargs = {
        key: value
        for key, value in config.hyperparams.items()
        if key in accepted and key not in ("policy", "seed", "policy_kwargs")
    }
    kwargs["learning_rate"] = config.learning_rate_schedule().value(0)
    clip_range = config.clip_range_schedule()
    if clip_range is not None:
        kwargs["clip_range"] = clip_range.value(0)
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    kwargs.pop("replay_buffer_kwargs", None)  # the frame buffer's; no optimizer setting
    policy_kwargs = registry.resolve_policy_kwargs(config.hyperparams.get("policy_kwargs") or {})
    return algorithm(config.policy, env, policy_kwargs=policy_kwargs, device="cpu", **kwargs)


def _settings(model: BaseAlgorithm) -> list[dict[str, Any]]:
    """Every param_group setting but the parameters and the listed differences."""
    skipped = {"params", "param_names", *OPTIMIZER_DIFFERENCES_FROM_SB3}
    groups = model.policy.optimizer.param_groups
    return [{key: value for key, value in group.items() if key not in skipped} for group in groups]


@pytest.mark.parametrize(("algo", "env", "overrides"), CASES)
def test_the_optimizer_is_the_one_sb3_builds(
    algo: str, env: str, overrides: list[str], env_for: Any
) -> None:
    _assert_sb3s_optimizer(_config(algo, env, overrides), env_for)


@pytest.mark.parametrize("preset", list(load_presets()))
def test_every_presets_optimizer_is_the_one_sb3_builds(preset: str, env_for: Any) -> None:
    algo = load_presets()[preset]["algo"]
    small = ["buffer_size=1000", "learning_starts=0"] if algo in ("dqn", "qrdqn", "c51") else []
    config = build_config(
        algo, "Breakout", preset=preset, overrides=["seed=1", "vec_env=sb3", *small]
    )
    _assert_sb3s_optimizer(config, env_for)


def _assert_sb3s_optimizer(config: Config, env_for: Any) -> None:
    vec_env = env_for(config)
    zoo_model, sb3_model = build_model(config, vec_env, "cpu"), _sb3_model(config, vec_env)
    assert type(zoo_model.policy.optimizer) is type(sb3_model.policy.optimizer)
    assert _settings(zoo_model) == _settings(sb3_model)


def test_an_rl_zoo3_ppo_file_keeps_sb3s_adam_epsilon(env_for: Any) -> None:
    config = _config("ppo", "Breakout", [], rl_zoo3_file=True)
    model = build_model(config, env_for(config), "cpu")
    assert model.policy.optimizer.param_groups[0]["eps"] == 1e-5  # SB3's PPO and A2C default
    assert _settings(model) == _settings(_sb3_model(config, env_for(config)))


@pytest.mark.skipif(not FUSED_ADAM_AVAILABLE, reason="PyTorch < 2.4 has no CPU fused Adam")
@pytest.mark.parametrize("algo", ["dqn", "ppo"])
@pytest.mark.parametrize("env", ["CartPole-v1", "Breakout"])
def test_the_fused_adam_takes_the_same_steps(algo: str, env: str, env_for: Any) -> None:
    config = _config(algo, env, ["n_envs=1", "batch_size=32"] if algo == "ppo" else [])
    model = build_model(config, env_for(config), "cpu")
    fused = model.policy.optimizer
    assert [group["fused"] for group in fused.param_groups] == [True]
    policy = copy.deepcopy(model.policy)  # the copy's optimizer holds the copy's parameters
    groups = [{**group, "fused": None} for group in policy.optimizer.param_groups]
    per_tensor = type(fused)(groups)
    generator = th.Generator().manual_seed(0)
    for _ in range(3):
        for original, twin in zip(model.policy.parameters(), policy.parameters(), strict=True):
            # in the weight's own layout (channels-last convolutions), as autograd gives it
            original.grad = th.empty_like(original).normal_(generator=generator)
            twin.grad = original.grad.clone()
        fused.step()
        per_tensor.step()
    for original, twin in zip(model.policy.parameters(), policy.parameters(), strict=True):
        th.testing.assert_close(original, twin, rtol=1e-6, atol=1e-7)


def test_a_users_own_kernel_choice_is_kept(env_for: Any) -> None:
    config = _config("dqn", "CartPole-v1", ["policy_kwargs.optimizer_kwargs.foreach=true"])
    groups = build_model(config, env_for(config), "cpu").policy.optimizer.param_groups
    assert (groups[0]["foreach"], groups[0]["fused"]) == (True, None)
    off = _config("ppo", "CartPole-v1", ["fused_adam=false"])
    groups = build_model(off, env_for(off), "cpu").policy.optimizer.param_groups
    assert (groups[0]["fused"], groups[0]["eps"]) == (None, 1e-5)
