"""C51: the projected distributional Bellman target against hand-computed cases, the target's
support, the Double choice of the next action, the losses and priorities, the saved model and
the settings it refuses."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from zoo.algorithms.algos import ZooC51
from zoo.algorithms.distributional import (
    CategoricalQNetwork,
    DuelingCategoricalQNetwork,
    cross_entropies,
    kl_divergences,
    next_distribution,
    project_distribution,
)
from zoo.algorithms.model_loading import load_model
from zoo.config.config import build_config
from zoo.core.errors import UserError

Zoo = Callable[..., subprocess.CompletedProcess[str]]

SUPPORT = th.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])  # 5 atoms, spacing 1
NEXT = th.tensor([0.1, 0.2, 0.3, 0.2, 0.2])


def _project(reward: float, done: float, discount: float) -> th.Tensor:
    return project_distribution(
        NEXT[None], th.tensor([[reward]]), th.tensor([[done]]), th.tensor([[discount]]), SUPPORT
    )[0]


def test_projection_of_a_two_step_return_by_hand() -> None:
    # r = 0.5, gamma 0.5 over two steps: T z = 0.5 + 0.25 z = (0, 0.25, 0.5, 0.75, 1); each
    # moved atom splits its probability between atoms 0 and 1 by closeness:
    # 0 -> 0.1 | 0.25 -> 0.15, 0.05 | 0.5 -> 0.15, 0.15 | 0.75 -> 0.05, 0.15 | 1 -> 0.2
    expected = th.tensor([0.0, 0.0, 0.45, 0.55, 0.0])
    assert th.allclose(_project(0.5, 0.0, 0.5**2), expected, atol=1e-6)


def test_projection_clips_at_the_bounds_by_hand() -> None:
    # r = 1.5, discount 1: T z = (-0.5, 0.5, 1.5, 2.5, 3.5), the last two clipped to v_max 2
    expected = th.tensor([0.0, 0.05, 0.15, 0.25, 0.55])
    assert th.allclose(_project(1.5, 0.0, 1.0), expected, atol=1e-6)
    # every atom beyond v_min lands on v_min
    assert th.allclose(_project(-7.0, 0.0, 1.0), th.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))


def test_projection_of_a_terminal_transition_is_its_reward_alone() -> None:
    # done: T z = r = -0.3 for every atom: 0.3 on -1, 0.7 on 0, whatever the next distribution
    assert th.allclose(_project(-0.3, 1.0, 0.99), th.tensor([0.0, 0.3, 0.7, 0.0, 0.0]), atol=1e-6)
    assert th.allclose(_project(5.0, 1.0, 0.99), th.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))


def test_target_lies_on_the_support_and_keeps_the_mean_inside_the_bounds() -> None:
    generator = th.Generator().manual_seed(0)
    support = th.linspace(-10, 10, 51)
    # no mass on the outer atoms (|z| > 8): r + g z stays inside [-10, 10], nothing is clipped
    inner = th.where(support.abs() <= 8, 0.0, -th.inf)
    next_probabilities = th.softmax(th.randn(256, 51, generator=generator) + inner, dim=-1)
    rewards = th.rand(256, 1, generator=generator) * 2 - 1
    dones = (th.rand(256, 1, generator=generator) < 0.2).float()
    discounts = 0.99 ** th.randint(1, 4, (256, 1), generator=generator).float()
    targets = project_distribution(next_probabilities, rewards, dones, discounts, support)
    assert targets.shape == (256, 51)
    assert float(targets.min()) >= 0 and th.allclose(targets.sum(dim=1), th.ones(256))
    # Inside [v_min, v_max] the projection keeps the mean: E[target] = r + g (1 - d) E[next].
    means = (targets * support).sum(dim=1, keepdim=True)
    expected = rewards + (1 - dones) * discounts * (next_probabilities * support).sum(1, True)
    assert th.allclose(means, expected, atol=1e-4)


class _FixedDistributions(CategoricalQNetwork):
    """Stands in for a network: the same logits for every observation."""

    def __init__(self, logits: list[list[float]]) -> None:
        th.nn.Module.__init__(self)
        self.fixed = th.tensor(logits)
        self.n_atoms = self.fixed.shape[1]
        self.support = th.tensor([0.0, 1.0, 2.0])

    def logits(self, obs: th.Tensor) -> th.Tensor:
        return self.fixed.expand(obs.shape[0], -1, -1)


def test_double_q_values_the_online_networks_choice_with_the_target_network() -> None:
    big = 10.0
    online = _FixedDistributions([[big, 0, 0], [0, 0, big]])  # prefers action 1 (mean ~2)
    target = _FixedDistributions([[0, 0, big], [big, 0, 0]])  # prefers action 0
    observations = th.zeros(2, 1)
    double = next_distribution(online, target, observations, double_q=True)
    single = next_distribution(online, target, observations, double_q=False)
    assert th.allclose(double, th.softmax(th.tensor([big, 0, 0]), 0).expand(2, -1))
    assert th.allclose(single, th.softmax(th.tensor([0, 0, big]), 0).expand(2, -1))


def test_losses_are_cross_entropies_and_priorities_kl_divergences() -> None:
    targets = th.tensor([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]])
    log_probabilities = th.log(th.tensor([[0.25, 0.75, 1e-9], [0.2, 0.3, 0.5]]))
    entropy = -(th.special.xlogy(targets, targets)).sum(1)
    crossed = cross_entropies(log_probabilities, targets)
    assert th.allclose(crossed, -(targets * log_probabilities).sum(1))
    assert th.allclose(kl_divergences(log_probabilities, targets), crossed - entropy)
    assert float(kl_divergences(log_probabilities, targets)[0]) == pytest.approx(0, abs=1e-6)


def _c51(**settings: object) -> ZooC51:
    return ZooC51(
        "MlpPolicy", "CartPole-v1", buffer_size=500, learning_starts=64,
        policy_kwargs={"net_arch": [16]}, device="cpu", seed=0, **settings,
    )  # fmt: skip


@pytest.mark.parametrize("dueling", [False, True])
def test_update_minimises_the_cross_entropy_with_n_step_discounts(dueling: bool) -> None:
    model = _c51(dueling=dueling, double_q=True, n_atoms=11, v_min=-5, v_max=5)
    network = DuelingCategoricalQNetwork if dueling else CategoricalQNetwork
    assert type(model.q_net) is network and model.q_net.support.shape == (11,)
    observations = th.randn(4, 4)
    batch = ReplayBufferSamples(
        observations=observations, actions=th.tensor([[0], [1], [1], [0]]),
        next_observations=th.randn(4, 4), dones=th.tensor([[0.0], [1.0], [0.0], [0.0]]),
        rewards=th.tensor([[1.0], [-1.0], [0.5], [0.0]]),
        discounts=th.tensor([[0.99**3], [0.99], [0.99**2], [0.99**3]]),
    )  # fmt: skip
    log_probabilities, targets = model._log_probabilities_and_targets(batch)
    next_probabilities = next_distribution(
        model.q_net, model.q_net_target, batch.next_observations, True
    )
    expected = project_distribution(
        next_probabilities, batch.rewards, batch.dones, batch.discounts, model.q_net.support
    )
    assert th.allclose(targets, expected)
    chosen = model.q_net.log_probabilities(observations)[th.arange(4), batch.actions[:, 0]]
    assert th.allclose(log_probabilities, chosen)
    assert float(model.td_loss(batch).detach()) == pytest.approx(
        float(cross_entropies(chosen, targets).mean().detach())
    )
    _, priorities = model.td_losses(batch)
    assert th.allclose(priorities, kl_divergences(chosen.detach(), targets))
    means = (model.q_net.log_probabilities(observations).exp() * model.q_net.support).sum(-1)
    assert th.allclose(model.q_net(observations), means, atol=1e-6)  # Q: the means


def test_a_saved_c51_loads_as_c51_and_with_plain_dqn(tmp_path: Path) -> None:
    model = _c51(n_atoms=21, v_min=-3, v_max=7, noisy=True, train_freq=4)
    model.learn(200)
    model.save(tmp_path / "c51.zip")
    loaded = load_model(tmp_path / "c51.zip", device="cpu")
    assert isinstance(loaded, ZooC51) and (loaded.n_atoms, loaded.v_min, loaded.v_max) == (
        21,
        -3,
        7,
    )
    plain = DQN.load(tmp_path / "c51.zip", device="cpu")
    observations = th.randn(5, 4)
    for other in (loaded, plain):
        other.policy.set_training_mode(False)
    model.policy.set_training_mode(False)
    assert th.equal(loaded.q_net(observations), model.q_net(observations))
    assert th.equal(plain.q_net(observations), model.q_net(observations))
    assert th.allclose(loaded.q_net.support, th.linspace(-3, 7, 21))


def test_shipped_defaults_are_51_atoms_on_plus_minus_10() -> None:
    config = build_config("c51", "Breakout")
    kwargs = config.algorithm_kwargs()
    assert (kwargs["n_atoms"], kwargs["v_min"], kwargs["v_max"]) == (51, -10.0, 10.0)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (["v_min=10"], "key 'v_min': 10 is not below v_max (10"),
        (["v_min=1", "v_max=-1"], "key 'v_min': 1 is not below v_max (-1"),
        (["n_atoms=1"], "key 'n_atoms': must be >= 2 and <= 1000, got 1"),
        (["loss=mse"], "key 'loss' does not apply here: C51 always minimises the cross-entropy"),
    ],
)
def test_bad_support_is_one_line_and_exit_2(
    settings: list[str], expected: str, in_process: Zoo, tmp_path: Path
) -> None:
    sets = [part for setting in settings for part in ("--set", setting)]
    result = in_process("train", "--algo", "c51", "--env", "Breakout", *sets)
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_the_constructor_refuses_a_bad_support() -> None:
    with pytest.raises(ValueError, match="v_min"):
        _c51(v_min=3, v_max=3)
    with pytest.raises(ValueError, match="n_atoms"):
        _c51(n_atoms=1)
    with pytest.raises(UserError):
        build_config("c51", "CartPole-v1", overrides=["v_max=-20"])
