"""Schedules are constructor arguments of zoo's algorithms: a model built by hand follows
them and keeps them through save and load; one built without them is SB3's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure

from zoo.algorithms import registry
from zoo.algorithms.algos import ZooA2C, ZooDQN, ZooPPO
from zoo.config.config import build_config
from zoo.schema.schedules import Schedule, build_schedule

STEPS = 1000
# Small enough that the DQN's replay buffer costs nothing.
ALGORITHMS: list[tuple[type[BaseAlgorithm], type[BaseAlgorithm], dict[str, Any]]] = [
    (ZooDQN, DQN, {"buffer_size": 1000}),
    (ZooA2C, A2C, {}),
    (ZooPPO, PPO, {"n_steps": 64, "batch_size": 64}),
]


def _linear(initial: float, final: float) -> Schedule:
    spec = {"type": "linear", "initial": initial, "final": final}
    return build_schedule(spec, STEPS, rising=final > initial)


def _learning_rate_at(model: BaseAlgorithm, step: int) -> float:
    model.set_logger(configure(None, []))
    model.num_timesteps = step
    model._update_learning_rate(model.policy.optimizer)
    return float(model.policy.optimizer.param_groups[0]["lr"])


def _built_and_loaded(
    algorithm: type[BaseAlgorithm], tmp_path: Path, **kwargs: Any
) -> tuple[BaseAlgorithm, BaseAlgorithm]:
    model = algorithm("MlpPolicy", "CartPole-v1", device="cpu", seed=0, **kwargs)
    model.save(tmp_path / "model.zip")
    return model, algorithm.load(tmp_path / "model.zip", device="cpu")


@pytest.mark.parametrize(("algorithm", "_plain", "kwargs"), ALGORITHMS)
def test_a_learning_rate_schedule_given_to_the_constructor_is_followed_and_saved(
    algorithm: type[BaseAlgorithm], _plain: type, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    schedule = _linear(1e-3, 1e-4)
    for model in _built_and_loaded(algorithm, tmp_path, lr_step_schedule=schedule, **kwargs):
        assert model.lr_step_schedule == schedule  # type: ignore[attr-defined]
        assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # step 0
        assert _learning_rate_at(model, 500) == pytest.approx(schedule.value(500))


@pytest.mark.parametrize(("algorithm", "plain", "kwargs"), ALGORITHMS)
def test_without_schedules_the_learning_rate_is_sb3s(
    algorithm: type[BaseAlgorithm], plain: type[BaseAlgorithm], kwargs: dict[str, Any]
) -> None:
    model = algorithm("MlpPolicy", "CartPole-v1", device="cpu", **kwargs)
    sb3 = plain("MlpPolicy", "CartPole-v1", device="cpu", **kwargs)
    assert model.lr_step_schedule is None  # type: ignore[attr-defined]
    assert model.learning_rate == sb3.learning_rate
    assert _learning_rate_at(model, 500) == _learning_rate_at(sb3, 500)


def test_dqn_epsilon_and_priority_beta_schedules_are_followed_and_saved(
    tmp_path: Path,
) -> None:
    epsilon, beta = _linear(1.0, 0.1), _linear(0.4, 1.0)
    built = _built_and_loaded(
        ZooDQN, tmp_path, buffer_size=1000, epsilon_schedule=epsilon, priority_beta_schedule=beta
    )
    for model in built:
        assert isinstance(model, ZooDQN)
        model.set_logger(configure(None, []))
        model.num_timesteps = 500
        model._on_step()
        assert model.exploration_rate == pytest.approx(epsilon.value(500))
        assert model.priority_beta() == pytest.approx(beta.value(500))


def test_without_an_epsilon_schedule_dqn_explores_as_sb3s() -> None:
    model = ZooDQN("MlpPolicy", "CartPole-v1", device="cpu", buffer_size=1000)
    sb3 = DQN("MlpPolicy", "CartPole-v1", device="cpu", buffer_size=1000)
    assert model.epsilon_schedule is None
    for each in (model, sb3):
        each.set_logger(configure(None, []))
        each._current_progress_remaining = 0.95
        each._on_step()
    # SB3: 1.0 down to 0.05 over the first 10% of the run; 5% done is half way.
    assert model.exploration_rate == sb3.exploration_rate == pytest.approx(0.525)


def test_ppo_clip_range_schedule_starts_at_its_step_zero_value_and_is_saved(
    tmp_path: Path,
) -> None:
    schedule = _linear(0.3, 0.1)
    for model in _built_and_loaded(
        ZooPPO, tmp_path, n_steps=64, batch_size=64, clip_step_schedule=schedule
    ):
        assert isinstance(model, ZooPPO)
        assert model.clip_step_schedule == schedule
        assert model.clip_range(1.0) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("algorithm", "kwargs"),
    [
        (ZooA2C, {"learning_rate": 1e-3, "lr_step_schedule": _linear(1e-3, 0.0)}),
        (ZooPPO, {"clip_range": 0.2, "clip_step_schedule": _linear(0.2, 0.0)}),
    ],
)
def test_a_value_and_its_schedule_are_not_both_given(
    algorithm: type[BaseAlgorithm], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="not both"):
        algorithm("MlpPolicy", "CartPole-v1", device="cpu", **kwargs)


@pytest.mark.parametrize("algo", sorted(registry.ALGORITHMS))
def test_schedule_arguments_are_not_hyperparameters(algo: str) -> None:
    """The constructor's schedules come from the YAML keys (learning_rate, exploration, ...);
    the defaults read from the constructor must not add them to config.yml."""
    arguments = {
        "lr_step_schedule",
        "epsilon_schedule",
        "clip_step_schedule",
        "priority_beta_schedule",
    }
    config = build_config(algo, "Breakout")
    assert "lr_step_schedule" in registry.constructor_defaults(registry.ALGORITHMS[algo])
    assert not arguments & set(config.hyperparams)
    assert not arguments & set(config.schema.fields)
    assert config.algorithm_kwargs()["lr_step_schedule"] == config.learning_rate_schedule()
