"""Prioritized replay: draws follow the priorities, weights follow the formula, TD errors
become priorities, and DQN and QR-DQN train, save and resume with it."""

from __future__ import annotations

import copy
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
import torch.nn.functional as F
from sb3_contrib.common.utils import quantile_huber_loss
from scipy.stats import chisquare

from tests.conftest import REPO
from zoo.algorithms.algos import ZooDQN, ZooQRDQN
from zoo.algorithms.model_loading import load_model
from zoo.algorithms.temporal_difference import quantile_huber_losses
from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.replay.prioritized import PrioritizedFrameReplayBuffer, SegmentTree
from zoo.training.model_setup import build_model
from zoo.tune import load_search_space

SPACE = gym.spaces.Box(0, 255, (2, 3, 3), dtype=np.uint8)


def _buffer(
    transitions: int, alpha: float = 0.6, epsilon: float = 1e-6
) -> PrioritizedFrameReplayBuffer:
    """A buffer of tiny frame stacks holding `transitions` transitions of one episode."""
    buffer = PrioritizedFrameReplayBuffer(
        16, SPACE, gym.spaces.Discrete(3), device="cpu", alpha=alpha, epsilon=epsilon
    )
    frames = [np.full((3, 3), t + 1, dtype=np.uint8) for t in range(transitions + 1)]
    previous = np.zeros((3, 3), dtype=np.uint8)
    for t in range(transitions):
        obs = np.stack([previous, frames[t]])[None]
        next_obs = np.stack([frames[t], frames[t + 1]])[None]
        buffer.add(obs, next_obs, np.array([[t % 3]]), np.array([1.0]), np.array([0.0]), [{}])
        previous = frames[t]
    return buffer


def test_segment_trees_sum_and_minimum() -> None:
    sums = SegmentTree(5, np.add, 0.0)
    minima = SegmentTree(5, np.minimum, np.inf)
    for tree in (sums, minima):
        tree.update(np.array([0, 1, 2, 3, 4]), np.array([3.0, 1.0, 4.0, 1.0, 5.0]))
        tree.update(np.array([3, 3]), np.array([7.0, 2.0]))  # the last value of a leaf wins
    assert sums.root() == 15.0 and minima.root() == 1.0
    assert list(sums.find_prefix_sums(np.array([0.0, 2.9, 3.0, 4.0, 7.9, 8.0, 9.9, 10.0, 14.9]))) == [
        0, 0, 1, 2, 2, 3, 3, 4, 4,
    ]  # fmt: skip


def test_draws_follow_the_priorities() -> None:
    """Chi-square on a fixed priority vector: 1,000 batches of 32 from 8 transitions."""
    buffer = _buffer(8, alpha=1.0, epsilon=0.0)
    priorities = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 8.0, 1.5, 4.0])
    leaves = np.arange(8)
    buffer.update_priorities(leaves, priorities)
    np.random.seed(0)
    counts = np.zeros(8)
    for _ in range(1000):
        _, drawn, _ = buffer.sample_prioritized(32, beta=1.0)
        counts += np.bincount(drawn, minlength=8)
    expected = priorities / priorities.sum() * counts.sum()
    assert chisquare(counts, expected).pvalue > 0.01
    # alpha 0 draws uniformly whatever the priorities
    flat = _buffer(8, alpha=0.0)
    flat.update_priorities(leaves, priorities)
    np.random.seed(1)
    _, drawn, weights = flat.sample_prioritized(4000, beta=1.0)
    assert chisquare(np.bincount(drawn, minlength=8)).pvalue > 0.01
    assert th.allclose(weights, th.ones_like(weights))


def test_weights_equal_the_formula() -> None:
    alpha, beta, epsilon = 0.6, 0.4, 0.01
    buffer = _buffer(6, alpha=alpha, epsilon=epsilon)
    errors = np.array([0.3, -1.2, 0.0, 2.5, -0.7, 0.1])
    buffer.update_priorities(np.arange(6), errors)
    np.random.seed(0)
    _, leaves, weights = buffer.sample_prioritized(64, beta=beta)
    scaled = (np.abs(errors) + epsilon) ** alpha
    probabilities = scaled / scaled.sum()
    n = 6
    expected = (n * probabilities[leaves]) ** -beta / ((n * probabilities) ** -beta).max()
    assert np.allclose(weights.numpy()[:, 0], expected, rtol=1e-6)
    assert weights.max() <= 1.0 + 1e-6


def test_td_errors_become_priorities_by_hand() -> None:
    buffer = _buffer(3, alpha=0.5, epsilon=0.01)
    assert np.allclose(buffer.sums.values(np.arange(3)), 1.0)  # new ones at max priority 1
    buffer.update_priorities(np.array([0, 1, 2]), th.tensor([0.5, -2.0, 0.0]))
    assert np.allclose(buffer.sums.values(np.arange(3)), [0.51**0.5, 2.01**0.5, 0.01**0.5])
    assert buffer.sums.root() == pytest.approx(0.51**0.5 + 2.01**0.5 + 0.1)
    assert buffer.minima.root() == pytest.approx(0.1)
    assert buffer.max_priority == pytest.approx(2.01)
    later = _buffer(4, alpha=0.5, epsilon=0.01)  # a 4th transition after the update:
    later.update_priorities(np.array([0, 1, 2]), np.array([0.5, -2.0, 0.0]))
    later.add(*_one_more(later))
    assert later.sums.values(np.array([4]))[0] == pytest.approx(2.01**0.5)  # the max


def _one_more(buffer: PrioritizedFrameReplayBuffer) -> tuple[object, ...]:
    last = buffer.pending[0]
    next_obs = np.stack([last[1], last[1] + 1])[None]
    return last[None], next_obs, np.array([[0]]), np.array([0.0]), np.array([0.0]), [{}]


def test_a_pickled_buffer_keeps_its_priorities() -> None:
    buffer = _buffer(8)
    buffer.update_priorities(np.arange(8), np.arange(8) * 0.5)
    restored = pickle.loads(pickle.dumps(buffer, protocol=pickle.HIGHEST_PROTOCOL))
    for seed in (0, 1):
        np.random.seed(seed)
        _, leaves, weights = buffer.sample_prioritized(32, beta=0.5)
        np.random.seed(seed)
        _, restored_leaves, restored_weights = restored.sample_prioritized(32, beta=0.5)
        assert np.array_equal(leaves, restored_leaves) and th.equal(weights, restored_weights)


def test_quantile_losses_per_transition_average_to_sb3_contribs() -> None:
    th.manual_seed(0)
    current, targets = th.randn(5, 8), th.randn(5, 8) * 2
    per_transition = quantile_huber_losses(current, targets)
    assert per_transition.shape == (5,)
    assert th.allclose(per_transition.mean(), quantile_huber_loss(current, targets))


@pytest.mark.parametrize("algo", ["dqn", "qrdqn"])
def test_the_loss_is_importance_weighted_and_errors_become_priorities(algo: str) -> None:
    overrides = [
        "seed=0", "buffer_size=300", "learning_starts=1000", "prioritized_replay=true",
        "network=dqn2013", "priority_epsilon=0.001", "double_q=true", "dueling=true",
        "n_steps=3",
    ] + (["policy_kwargs.n_quantiles=8"] if algo == "qrdqn" else [])  # fmt: skip
    config = build_config(algo, "Breakout", overrides=overrides)
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    try:
        model = build_model(config, env, "cpu")
        model.learn(150)
    finally:
        env.close()
    assert isinstance(model, ZooDQN | ZooQRDQN)
    buffer = model.replay_buffer
    assert isinstance(buffer, PrioritizedFrameReplayBuffer) and buffer.n_steps == 3
    beta = model.priority_beta()
    assert beta == pytest.approx(0.4 + 0.6 * 150 / config.n_timesteps)
    np.random.seed(5)
    batch, leaves, weights = copy.deepcopy(buffer).sample_prioritized(32, beta)
    with th.no_grad():
        if isinstance(model, ZooDQN):
            current, targets = model._values_and_targets(batch)
            losses = F.smooth_l1_loss(current, targets, reduction="none")[:, 0]
            errors = (targets - current).abs()[:, 0]
        else:
            current, targets = model._quantiles_and_targets(batch)
            losses = errors = quantile_huber_losses(current, targets)
    np.random.seed(5)
    model.learning_starts = 100  # the 150 stored transitions may now be learned from
    model.train(gradient_steps=1, batch_size=32)  # draws the same batch, then one update
    loss = model.logger.name_to_value["train/loss"]
    assert loss == pytest.approx((weights[:, 0] * losses).mean().item(), rel=1e-5)
    # The last of a leaf drawn twice is the one the tree keeps.
    last = {leaf: index for index, leaf in enumerate(leaves)}
    leaf_list = np.array(list(last))
    expected = (errors.numpy()[list(last.values())] + 0.001) ** 0.6
    assert np.allclose(buffer.sums.values(leaf_list), expected, rtol=1e-5)


def test_dqn_trains_and_resumes_with_prioritized_replay(
    in_process: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    settings = [
        "--set", "buffer_size=400", "--set", "learning_starts=100", "--set", "eval_freq=0",
        "--set", "save_replay_buffer=true", "--set", "network=dqn2013", "--set",
        "prioritized_replay=true", "--seed", "0", "--quiet",
    ]  # fmt: skip
    first = in_process("train", "--algo", "dqn", "--env", "Breakout", "-n", "200", *settings)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    second = in_process("train", "--resume", str(run_dir), "-n", "300", "--quiet")
    assert second.returncode == 0, second.stderr
    model = load_model(run_dir / "final_model.zip", device="cpu")
    assert model.prioritized_replay  # type: ignore[attr-defined]
    assert model.priority_beta() > 0.4  # type: ignore[attr-defined]
    assert "train/priority_beta" in (run_dir / "progress.csv").read_text()


def test_tune_can_search_it(tmp_path: Path) -> None:
    path = tmp_path / "space.yml"
    path.write_text(
        "dqn:\n  prioritized_replay: {choices: [false, true]}\n"
        "  priority_alpha: {float: [0.4, 0.8]}\n"
    )
    space = load_search_space("dqn", path)
    keys = {entry.key for entry in space.entries}
    assert {"prioritized_replay", "priority_alpha"} <= keys
    shipped = (REPO / "hyperparams" / "search_spaces.yml").read_text()
    assert "# prioritized_replay: {choices: [false, true]}" in shipped  # offered, off by default
