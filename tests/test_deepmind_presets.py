"""The DeepMind presets: DeepMind's RMSProp steps on a fixed batch, and their 1M replay fits
a 16 GB machine."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
import torch.nn.functional as F

from zoo.algorithms.algos import ZooDQN
from zoo.algorithms.optimizers import DeepMindRMSprop
from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.training.memory_admission import admit_replay_buffer
from zoo.training.model_setup import build_model

GRADIENT_STEPS = 3


def _deepmind_update(
    network: th.nn.Module, state: dict[str, th.Tensor], lr: float, decay: float = 0.95
) -> None:
    """NeuralQLearner.lua's update, on gradients of a loss summed over the batch."""
    with th.no_grad():
        for name, parameter in network.named_parameters():
            grad = parameter.grad
            assert grad is not None
            g = state.setdefault(f"{name}.g", th.zeros_like(parameter))
            g2 = state.setdefault(f"{name}.g2", th.zeros_like(parameter))
            g.mul_(decay).add_((1 - decay) * grad)
            g2.mul_(decay).add_((1 - decay) * grad * grad)
            parameter -= lr * grad / th.sqrt(g2 - g * g + 0.01)


@pytest.mark.parametrize("preset", ["nature2015", "dqn2013"])
def test_preset_steps_are_deepmind_steps_on_a_fixed_batch(preset: str) -> None:
    """zoo's gradient steps (batch-mean Huber loss, DeepMindRMSprop, eps 0.01 / 32^2) move
    the weights as DeepMind's code does (summed loss with error clipping, eps 0.01)."""
    config = build_config(
        "dqn",
        "Breakout",
        preset=preset,
        overrides=["seed=0", "buffer_size=200", "learning_starts=1000"],
    )
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    try:
        model = build_model(config, env, "cpu")
        assert isinstance(model, ZooDQN)
        assert isinstance(model.policy.optimizer, DeepMindRMSprop)
        model.learn(120)  # fills the buffer; learning has not started
    finally:
        env.close()
    model.learning_starts = 0
    reference = copy.deepcopy(model.q_net)
    before = {name: p.detach().clone() for name, p in model.q_net.named_parameters()}
    target = copy.deepcopy(model.q_net_target)  # unchanged: no target update in between
    state: dict[str, th.Tensor] = {}
    lr = model.policy.optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(2.5e-4)
    for seed in range(GRADIENT_STEPS):
        np.random.seed(seed)
        batch = model.replay_buffer.sample(32)  # type: ignore[union-attr]
        with th.no_grad():
            next_values = target(batch.next_observations).max(dim=1, keepdim=True).values
            targets = batch.rewards + (1 - batch.dones) * 0.99 * next_values
        current = reference(batch.observations).gather(1, batch.actions.long())
        reference.zero_grad()
        F.smooth_l1_loss(current, targets, reduction="sum").backward()
        _deepmind_update(reference, state, lr)

        np.random.seed(seed)
        model.train(gradient_steps=1, batch_size=32)  # samples the same batch
    for (name, ours), theirs in zip(
        model.q_net.named_parameters(), reference.parameters(), strict=True
    ):
        assert th.allclose(ours, theirs, rtol=1e-5, atol=1e-8), name
        assert not th.equal(ours, before[name]), name  # real steps were taken


def test_deepmind_rmsprop_is_the_summed_loss_update_for_a_mean_loss() -> None:
    """One tensor, a hand-made batch of gradients: mean-loss steps with eps 0.01/32^2 equal
    summed-loss steps with eps 0.01, and torch's RMSprop (eps outside the root) differs."""
    th.manual_seed(0)
    sums = [th.randn(5) * 3 for _ in range(4)]  # gradients of a loss summed over 32
    ours = th.zeros(5, requires_grad=True)
    optimizer = DeepMindRMSprop([ours], lr=1e-3)
    theirs = th.zeros(5, requires_grad=True)
    state: dict[str, th.Tensor] = {}
    module = th.nn.Module()
    module.weight = th.nn.Parameter(theirs.detach().clone())
    torch_rmsprop = th.zeros(5, requires_grad=True)
    torch_optimizer = th.optim.RMSprop(
        [torch_rmsprop], lr=1e-3, alpha=0.95, eps=0.01, centered=True
    )
    for grad in sums:
        ours.grad = grad / 32
        optimizer.step()
        module.weight.grad = grad.clone()
        _deepmind_update(module, state, lr=1e-3)
        torch_rmsprop.grad = grad / 32
        torch_optimizer.step()
    assert th.allclose(ours, module.weight, rtol=1e-5, atol=1e-8)
    assert not th.allclose(torch_rmsprop, module.weight, rtol=0.1)


@pytest.mark.parametrize("preset", ["nature2015", "dqn2013"])
def test_the_presets_keep_1m_replay_and_fit_16_gb(preset: str) -> None:
    config = build_config("dqn", "Breakout", preset=preset)
    assert config.hyperparams["buffer_size"] == 1_000_000
    assert config.hyperparams["replay_buffer"] == "frames"
    # A 16 GB machine has about 14 GB available to a run once its system is up.
    assert admit_replay_buffer(config, available=14 * 10**9) < 7.5e9


def test_qrdqn_atari_learning_starts_is_the_benchmarks() -> None:
    assert build_config("qrdqn", "Breakout").hyperparams["learning_starts"] == 50_000


# Each preset's evaluation as its source scores agents: (epsilon, games, frame cap, actions).
SOURCE_EVALUATIONS = {
    ("sb3_benchmark", "dqn"): (0.01, 10, 108_000, "greedy"),  # rl_zoo3 enjoy: DQN's final eps
    ("nature2015", "dqn"): (0.05, 30, 18_000, "greedy"),  # 30 games of 5 minutes, eps 0.05
    ("dqn2013", "dqn"): (0.05, 10, 108_000, "greedy"),  # eps 0.05
    ("keras", "dqn"): (0.0, 10, 108_000, "greedy"),  # no evaluation of its own
    ("a2c_nstep5", "a2c"): (0.0, 10, 108_000, "sampled"),  # the policy's own actions
    ("ppo2017", "ppo"): (0.0, 10, 108_000, "sampled"),
    ("drq_eps", "dqn"): (0.001, 100, 108_000, "greedy"),  # Dopamine's atari_100k gin
    ("der_dqn", "dqn"): (0.001, 100, 108_000, "greedy"),
    ("der", "c51"): (0.001, 100, 108_000, "greedy"),
    # Rainbow's paper gives no evaluation epsilon: greedy on the noise-free mean weights,
    # games capped at 30 minutes (108K frames) as the paper's
    ("rainbow", "c51"): (0.0, 10, 108_000, "greedy"),
}


@pytest.mark.parametrize(("preset", "algo"), list(SOURCE_EVALUATIONS))
def test_presets_evaluate_as_their_sources(preset: str, algo: str) -> None:
    evaluation = build_config(algo, "Breakout", preset=preset).evaluation
    got = (evaluation.epsilon, evaluation.episodes, evaluation.max_frames, evaluation.actions)
    assert got == SOURCE_EVALUATIONS[preset, algo]


def test_every_preset_has_its_evaluation_checked() -> None:
    from zoo.config.layers import load_presets

    assert set(load_presets()) == {preset for preset, _algo in SOURCE_EVALUATIONS}
