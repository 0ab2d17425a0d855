"""Noisy nets: the layer's initialisation and noise statistics, when noise is drawn (every
training forward pass and action, never in evaluation unless asked), epsilon under them, and
the settings that contradict them."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch as th
import torch.nn.functional as F

from zoo.algorithms.algos import ZooDQN, ZooQRDQN
from zoo.algorithms.model_loading import load_model
from zoo.algorithms.noisy import NoisyLinear, noisy_layers
from zoo.config.config import build_config
from zoo.core.errors import UserError

Zoo = Callable[..., subprocess.CompletedProcess[str]]


def test_initialisation_follows_the_paper() -> None:
    th.manual_seed(0)
    layer = NoisyLinear(64, 16, sigma0=0.5)
    bound = 1 / math.sqrt(64)
    assert float(layer.weight_mu.detach().abs().max()) <= bound
    assert float(layer.bias_mu.detach().abs().max()) <= bound
    assert float(layer.weight_mu.detach().std()) == pytest.approx(
        bound / math.sqrt(3), rel=0.1
    )  # uniform
    assert th.allclose(layer.weight_sigma, th.full((16, 64), 0.5 / 8))
    assert th.allclose(layer.bias_sigma, th.full((16,), 0.5 / 8))


def test_factorised_noise_has_mean_zero_and_variance_two_over_pi() -> None:
    """(w - mu) / sigma = f(e_out) f(e_in) with f(x) = sgn(x) sqrt|x|: mean 0, variance
    E|e|^2 = 2/pi; the bias noise f(e) has variance E|e| = sqrt(2/pi)."""
    th.manual_seed(1)
    layer = NoisyLinear(6, 5)
    draws = [layer.sampled_weights() for _ in range(20_000)]
    weight_noise = th.stack([(w - layer.weight_mu) / layer.weight_sigma for w, _ in draws]).detach()
    bias_noise = th.stack([(b - layer.bias_mu) / layer.bias_sigma for _, b in draws]).detach()
    assert float(weight_noise.mean()) == pytest.approx(0, abs=0.01)
    assert float(weight_noise.var()) == pytest.approx(2 / math.pi, rel=0.03)
    assert float(bias_noise.mean()) == pytest.approx(0, abs=0.02)
    assert float(bias_noise.var()) == pytest.approx(math.sqrt(2 / math.pi), rel=0.03)
    # factorised: the noise of one weight row is a multiple of any other row's
    one = weight_noise[0]
    assert th.allclose(one[0] * one[1, 0], one[1] * one[0, 0], atol=1e-5)


def test_forward_pass_is_the_linear_map_of_one_draw_of_the_weights() -> None:
    layer = NoisyLinear(4, 3)
    inputs = th.randn(7, 4)
    th.manual_seed(5)
    noisy = layer(inputs)
    th.manual_seed(5)
    weight, bias = layer.sampled_weights()
    assert th.allclose(noisy, F.linear(inputs, weight, bias), atol=1e-6)
    layer.noise_on = False
    assert th.equal(layer(inputs), F.linear(inputs, layer.weight_mu, layer.bias_mu))


def _noisy_model(algorithm: type = ZooDQN, **settings: object) -> ZooDQN:
    return algorithm(  # type: ignore[no-any-return]
        "MlpPolicy",
        "CartPole-v1",
        noisy=True,
        dueling=True,
        buffer_size=500,
        learning_starts=100,
        policy_kwargs={"net_arch": [16]},
        device="cpu",
        seed=0,
        **settings,
    )


@pytest.mark.parametrize("algorithm", [ZooDQN, ZooQRDQN])
def test_every_head_layer_is_noisy_and_noise_follows_the_training_mode(algorithm: type) -> None:
    model = _noisy_model(algorithm)
    online, target = (
        (model.q_net, model.q_net_target)
        if algorithm is ZooDQN
        else (model.quantile_net, model.quantile_net_target)  # type: ignore[attr-defined]
    )
    for net in (online, target):
        assert not any(
            isinstance(m, th.nn.Linear) for m in net.modules() if m is not net.features_extractor
        )
        assert len(noisy_layers(net)) == 4  # value and advantage streams, two layers each
    observations = th.randn(8, 4)
    model.policy.set_training_mode(True)
    for net in (online, target):  # fresh noise at every forward pass, the target's too
        assert not th.allclose(net(observations), net(observations))
    model.policy.set_training_mode(False)
    for net in (online, target):
        first = net(observations)
        assert th.equal(first, net(observations))
        with th.no_grad():
            for layer in noisy_layers(net):
                layer.weight_sigma.zero_()
                layer.bias_sigma.zero_()
        assert th.allclose(first, net(observations))  # the mean weights


def test_acting_in_training_draws_noise_and_evaluation_does_not() -> None:
    model = _noisy_model()
    seen: list[bool] = []
    layer = noisy_layers(model.q_net)[0]
    layer.register_forward_hook(lambda module, args, out: seen.append(module.noise_on))
    observation = np.zeros((1, 4), dtype=np.float32)
    model.predict(observation, deterministic=False)
    model.predict(observation, deterministic=True)
    model.predict(observation, deterministic=False)
    assert seen == [True, False, True]
    assert not model.policy.training and not layer.noise_on  # as it was


def test_noisy_eval_sample_draws_noise_in_evaluation() -> None:
    model = _noisy_model(noisy_eval="sample")
    observations = th.randn(8, 4)
    model.policy.set_training_mode(False)
    assert not th.allclose(model.q_net(observations), model.q_net(observations))


def test_training_keeps_epsilon_zero_and_saves_the_noisy_heads(tmp_path: Path) -> None:
    model = _noisy_model(train_freq=4, target_update_interval=50)
    assert model.exploration_rate == 0.0
    model.learn(300)
    assert model.exploration_rate == 0.0 and model._n_updates > 0
    model.save(tmp_path / "noisy.zip")
    loaded = load_model(tmp_path / "noisy.zip", device="cpu")
    assert loaded.policy.noisy and len(noisy_layers(loaded.policy)) == 8  # type: ignore[attr-defined]
    observations = th.randn(8, 4)
    loaded.policy.set_training_mode(False)
    model.policy.set_training_mode(False)
    assert th.equal(loaded.q_net(observations), model.q_net(observations))  # type: ignore[attr-defined]


def test_noisy_makes_epsilon_zero_in_the_config() -> None:
    config = build_config("dqn", "Breakout", overrides=["noisy=true"])  # atari ships 0.01
    schedule = config.exploration_schedule()
    assert schedule is not None and schedule.value(0) == schedule.value(10**7) == 0.0
    assert config.algorithm_kwargs()["noisy"] is True


@pytest.mark.parametrize(
    "contradiction",
    [
        "exploration_final_eps=0.01",
        "exploration_initial_eps=1",
        "exploration={type: constant, value: 0.05}",
        "exploration={type: linear, initial: 0, final: 0, random_steps: 1000}",
        "exploration.final=0.02",
    ],
)
def test_noisy_with_epsilon_settings_is_refused(contradiction: str) -> None:
    with pytest.raises(UserError, match=r"noisy nets .* explore by their noise with epsilon 0"):
        build_config("dqn", "CartPole-v1", overrides=["noisy=true", contradiction])


def test_the_constructor_refuses_noisy_with_epsilon() -> None:
    with pytest.raises(ValueError, match="noisy nets explore with epsilon 0"):
        _noisy_model(exploration_final_eps=0.05)


def test_noisy_with_epsilon_zero_is_accepted() -> None:
    config = build_config(
        "qrdqn", "CartPole-v1", overrides=["noisy=true", "exploration_final_eps=0"]
    )
    assert config.hyperparams["exploration"]["initial"] == 0.0


def test_noisy_contradiction_through_the_cli_is_one_line_and_exit_2(
    in_process: Zoo, tmp_path: Path
) -> None:
    result = in_process(
        "train", "--algo", "dqn", "--env", "CartPole-v1", "--set", "noisy=true",
        "--set", "exploration_final_eps=0.05",
    )  # fmt: skip
    assert result.returncode == 2
    assert "explore by their noise with epsilon 0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_noisy_help_says_epsilon_is_off(in_process: Zoo) -> None:
    result = in_process("train", "--algo", "dqn", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "noisy" in text and "epsilon is 0 in training" in text
