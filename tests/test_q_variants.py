"""Double DQN, Dueling heads, the 2013/2015 networks and the TD losses, checked on numbers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv

from zoo.algorithms.algos import ZooDQN, ZooQRDQN
from zoo.algorithms.model_loading import load_model
from zoo.algorithms.q_networks import (
    CnnQPolicy,
    CnnQuantilePolicy,
    DQN2013Trunk,
    Nature2015Trunk,
    dueling_combine,
)
from zoo.algorithms.temporal_difference import next_quantiles
from zoo.config.config import build_config
from zoo.core.errors import UserError
from zoo.envs.stack import make_vec_env_for
from zoo.replay.frame_buffer import FrameReplayBuffer
from zoo.training.model_setup import build_model

# The online network prefers a0 in s1 = (1, 0) and a1 in s2 = (0, 1): Q = W s.
ONLINE_WEIGHTS = [
    [1.0, 0.0],
    [0.0, 2.0],
    [0.5, 0.5],
]  # online Q(s1) = (1, 0, .5), Q(s2) = (0, 2, .5)
TARGET_WEIGHTS = [
    [0.2, 3.0],
    [0.4, 1.0],
    [2.0, 0.0],
]  # target Q(s1) = (.2, .4, 2), Q(s2) = (3, 1, 0)


class TwoStateEnv(gym.Env[np.ndarray, int]):
    """Observations are 2-vectors, three actions; only its spaces matter here."""

    observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.array([1.0, 0.0], dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.array([0.0, 1.0], dtype=np.float32), 0.0, True, False, {}


def _linear_dqn(**variant: Any) -> ZooDQN:
    """A DQN whose Q-networks are single linear layers with the weights above."""
    model = ZooDQN(
        "MlpPolicy",
        TwoStateEnv(),
        gamma=0.5,
        buffer_size=10,
        policy_kwargs={"net_arch": []},
        device="cpu",
        **variant,
    )
    with th.no_grad():
        for net, weights in ((model.q_net, ONLINE_WEIGHTS), (model.q_net_target, TARGET_WEIGHTS)):
            layer = net.q_net[0]
            layer.weight.copy_(th.tensor(weights))
            layer.bias.zero_()
    return model


def _batch(discounts: list[float] | None = None) -> ReplayBufferSamples:
    states = th.tensor([[1.0, 0.0], [0.0, 1.0]])
    return ReplayBufferSamples(
        observations=states,
        actions=th.tensor([[2], [0]]),  # online Q(s1, a2) = 0.5, Q(s2, a0) = 0
        next_observations=states,
        dones=th.tensor([[0.0], [0.0]]),
        rewards=th.tensor([[1.0], [0.0]]),
        discounts=None if discounts is None else th.tensor([[d] for d in discounts]),
    )


@pytest.mark.parametrize(
    ("double_q", "loss", "expected"),
    [
        # DQN targets: 1 + .5 * max(.2, .4, 2) = 2 and 0 + .5 * max(3, 1, 0) = 1.5
        (False, "mse", ((0.5 - 2.0) ** 2 + (0.0 - 1.5) ** 2) / 2),  # 2.25
        (False, "huber", ((1.5 - 0.5) + (1.5 - 0.5)) / 2),  # |error| > 1: linear part, 1.0
        # Double DQN: the online net picks a0 in s1 and a1 in s2, valued .2 and 1 by the target
        # net: targets 1 + .5 * .2 = 1.1 and 0 + .5 * 1 = .5
        (True, "mse", ((0.5 - 1.1) ** 2 + (0.0 - 0.5) ** 2) / 2),  # 0.305
        (True, "huber", (0.5 * 0.6**2 + 0.5 * 0.5**2) / 2),  # |error| < 1: quadratic, 0.1525
    ],
)
def test_td_loss_matches_hand_computed_targets(double_q: bool, loss: str, expected: float) -> None:
    model = _linear_dqn(double_q=double_q, loss=loss)
    assert model.td_loss(_batch()).item() == pytest.approx(expected, abs=1e-6)


def test_n_step_discounts_from_the_buffer_replace_gamma() -> None:
    model = _linear_dqn(double_q=True, loss="mse")
    # gamma**2 for s1 (a 2-step return), gamma**1 for s2 (its game ended after 1 step)
    targets = (1.0 + 0.25 * 0.2, 0.0 + 0.5 * 1.0)
    expected = ((0.5 - targets[0]) ** 2 + (0.0 - targets[1]) ** 2) / 2  # 0.27625
    assert model.td_loss(_batch([0.25, 0.5])).item() == pytest.approx(expected, abs=1e-6)


def test_dueling_aggregation_matches_hand_computed_q_values() -> None:
    model = ZooDQN(
        "MlpPolicy",
        TwoStateEnv(),
        dueling=True,
        buffer_size=10,
        policy_kwargs={"net_arch": []},
        device="cpu",
    )
    with th.no_grad():
        model.q_net.q_net[0].weight.copy_(th.tensor(ONLINE_WEIGHTS))  # advantage stream
        model.q_net.q_net[0].bias.zero_()
        model.q_net.value_net[0].weight.copy_(th.tensor([[1.0, -1.0]]))
        model.q_net.value_net[0].bias.fill_(0.5)
        q = model.q_net(th.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # s1: V = 1.5, A = (1, 0, .5), mean .5 -> Q = (2, 1, 1.5)
    # s2: V = -.5, A = (0, 2, .5), mean 2.5/3 -> Q = (-4/3, 2/3, -5/6)
    expected = th.tensor([[2.0, 1.0, 1.5], [-4 / 3, 2 / 3, -5 / 6]])
    assert th.allclose(q, expected, atol=1e-6)


def test_dueling_quantiles_and_double_quantile_targets() -> None:
    value = th.tensor([[[1.0], [3.0]]])  # (batch 1, 2 quantiles, 1)
    advantage = th.tensor([[[0.0, 2.0], [4.0, 0.0]]])  # (batch 1, 2 quantiles, 2 actions)
    # per quantile: V + A - mean over actions of A
    assert th.equal(
        dueling_combine(value, advantage, action_dim=2), th.tensor([[[0.0, 2.0], [5.0, 1.0]]])
    )
    online = th.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # mean over quantiles prefers a1
    target = th.tensor([[[5.0, 1.0], [7.0, 3.0]]])  # the target net itself prefers a0
    nxt = th.zeros(1, 1)
    assert th.equal(
        next_quantiles(lambda _: online, lambda _: target, nxt, True), th.tensor([[1.0, 3.0]])
    )
    assert th.equal(
        next_quantiles(lambda _: online, lambda _: target, nxt, False), th.tensor([[5.0, 7.0]])
    )


ATARI_OBS = gym.spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)


def _q_parameters(
    network: type[th.nn.Module] | None, dueling: bool = False, actions: int = 4
) -> int:
    kwargs: dict[str, Any] = {"dueling": dueling}
    if network is not None:
        kwargs["features_extractor_class"] = network
    policy = CnnQPolicy(ATARI_OBS, gym.spaces.Discrete(actions), lambda _: 1e-4, **kwargs)
    return sum(p.numel() for p in policy.q_net.parameters())


def test_parameter_counts_match_the_papers() -> None:
    # 2013: conv 16x4x8x8+16, conv 32x16x4x4+32, fc 9*9*32 -> 256, out 256 -> 4 actions
    assert _q_parameters(DQN2013Trunk) == (4112 + 8224 + (2592 * 256 + 256) + (256 * 4 + 4))
    assert _q_parameters(DQN2013Trunk) == 677_172
    # 2015: conv 32x4x8x8, 64x32x4x4, 64x64x3x3, fc 7*7*64 -> 512, out 512 -> 4 (18) actions
    nature = 8224 + 32832 + 36928 + (3136 * 512 + 512)
    assert _q_parameters(Nature2015Trunk) == nature + 512 * 4 + 4 == 1_686_180
    assert _q_parameters(Nature2015Trunk, actions=18) == nature + 512 * 18 + 18
    assert _q_parameters(None) == 1_686_180  # SB3's NatureCNN is the same network
    # Dueling 2015 (Wang et al.): two 512-unit streams after the convolutions, V and A heads
    dueling = 77_984 + 2 * (3136 * 512 + 512) + (512 + 1) + (512 * 4 + 4)
    assert _q_parameters(Nature2015Trunk, dueling=True) == dueling == 3_292_837
    quantile = CnnQuantilePolicy(
        ATARI_OBS, gym.spaces.Discrete(4), lambda _: 1e-4, features_extractor_class=DQN2013Trunk
    )
    assert (
        sum(p.numel() for p in quantile.quantile_net.parameters())
        == 12_336 + 663_808 + 256 * 800 + 800
    )


@pytest.fixture(scope="module")
def breakout_env() -> Iterator[VecEnv]:
    config = build_config("dqn", "Breakout")
    env = make_vec_env_for(config.env, config.env_settings(), seed=0, monitor_dir=None)
    yield env
    env.close()


def _observations(env: VecEnv, count: int = 8) -> np.ndarray:
    env.seed(3)
    observations = [env.reset()]
    for _ in range(count - 1):
        observations.append(env.step(np.array([env.action_space.sample()]))[0])
    return np.concatenate(observations)


VARIANTS = [
    ("dqn", {"double_q": d, "dueling": u, "network": n, "loss": loss})
    for d in (False, True)
    for u in (False, True)
    for n in (None, "nature", "dqn2013")
    for loss in ("huber", "mse")
] + [
    ("qrdqn", {"double_q": d, "dueling": u, "network": n})
    for d in (False, True)
    for u in (False, True)
    for n in (None, "nature", "dqn2013")
]


# Every combination on the small 2013 network in the fast tier; on the Nature network (which
# SB3's default, None, is too) with the slow runs.
@pytest.mark.parametrize(
    ("algo", "variant"),
    [
        pytest.param(
            algo, variant, marks=() if variant["network"] == "dqn2013" else pytest.mark.slow
        )
        for algo, variant in VARIANTS
    ],
    ids=lambda v: str(v),
)
def test_save_load_round_trip_gives_identical_q_values(
    algo: str, variant: dict[str, Any], breakout_env: VecEnv, tmp_path: Path
) -> None:
    overrides = [
        f"{key}={'null' if value is None else str(value).lower()}" for key, value in variant.items()
    ]
    extra = ["policy_kwargs.n_quantiles=8"] if algo == "qrdqn" else []
    config = build_config(algo, "Breakout", overrides=[*overrides, *extra, "buffer_size=32"])
    model = build_model(config, breakout_env, "cpu")
    path = tmp_path / "model.zip"
    model.save(path)
    observations = th.as_tensor(_observations(breakout_env))
    plain_class = DQN if algo == "dqn" else QRDQN
    original_q = _q_values(model, observations)
    loaded = load_model(path, device="cpu")
    assert th.equal(original_q, _q_values(loaded, observations))
    # Plain SB3 keeps PyTorch's default weight layout (zoo's is channels-last): the same
    # weights, other convolution kernels, equal up to float rounding.
    plain_q = _q_values(plain_class.load(path, device="cpu"), observations)
    assert th.allclose(original_q, plain_q, atol=1e-5)
    assert type(loaded) is (ZooDQN if algo == "dqn" else ZooQRDQN)
    assert isinstance(loaded.replay_buffer, FrameReplayBuffer)  # the Atari default
    for key, value in variant.items():
        assert getattr(loaded, key) == value


def _q_values(model: Any, observations: th.Tensor) -> th.Tensor:
    with th.no_grad():
        net = model.q_net if hasattr(model, "q_net") else model.quantile_net
        return net(model.policy.obs_to_tensor(observations.numpy())[0])


def test_variant_keys_are_validated() -> None:
    with pytest.raises(
        UserError, match=r"key 'network': expected one of nature, dqn2013, got 'resnet'"
    ):
        build_config("dqn", "Breakout", overrides=["network=resnet"])
    with pytest.raises(UserError, match=r"key 'loss': expected one of huber, mse, got 'l1'"):
        build_config("dqn", "Breakout", overrides=["loss=l1"])
    with pytest.raises(UserError, match=r"key 'loss' does not apply here: QR-DQN always"):
        build_config("qrdqn", "Breakout", overrides=["loss=mse"])
    with pytest.raises(UserError, match=r"key 'network': nature is a pixel network for CnnPolicy"):
        build_config("dqn", "SpaceInvaders-ram", overrides=["network=nature"])
    with pytest.raises(UserError, match=r"conflicts with policy_kwargs.features_extractor_class"):
        build_config(
            "dqn", "Breakout", overrides=["policy_kwargs.features_extractor_class=nature_cnn"]
        )
    with pytest.raises(UserError, match=r"n-step replay buffer cannot store frames once"):
        build_config(
            "dqn",
            "Breakout",
            overrides=[
                "replay_buffer=sb3",
                "optimize_memory_usage=true",
                "replay_buffer_kwargs.handle_timeout_termination=false",
            ],
        )
    with pytest.raises(UserError, match=r"key 'replay_buffer': frames stores pixel frames"):
        build_config("dqn", "SpaceInvaders-ram", overrides=["replay_buffer=frames"])
    with pytest.raises(UserError, match=r"key 'optimize_memory_usage': the frame buffer"):
        build_config("qrdqn", "Breakout", overrides=["optimize_memory_usage=true"])
    with pytest.raises(UserError, match=r"key 'double_q': expected true or false"):
        build_config("dqn", "Breakout", overrides=["double_q=yes please"])


def test_load_model_rejects_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable model zip"):
        load_model(bad)
    with pytest.raises(UserError, match="no such model file"):
        load_model(tmp_path / "missing.zip")
