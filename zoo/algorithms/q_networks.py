"""Q-networks of the DQN write-ups as SB3 policies: the 2013 and 2015 DeepMind networks and a
Dueling head, for DQN, QR-DQN and C51.

Each network is a convolutional trunk (a features extractor) followed by fully connected
hidden layers (`net_arch`) and the output layer. A Dueling head splits where the trunk ends:
a value stream and an advantage stream, each with its own `net_arch` hidden layers, combined as
Q = V + A - mean(A) (Wang et al. 2016). With `noisy`, the head's fully connected layers are
noisy (zoo/algorithms/noisy.py). The policies are ordinary SB3 policy classes, so a saved
zip loads with plain `DQN.load` / `QRDQN.load` once `zoo` is importable.

The networks scale pixels as SB3 does (`obs.float() / 255` for image spaces), with the
decision taken once when they are built: SB3 takes it at every forward pass by comparing the
space's bounds in numpy, which torch.compile cannot trace without breaking the graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import torch as th
from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QRDQNPolicy, QuantileNetwork
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.type_aliases import Schedule as ProgressSchedule
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from zoo.algorithms.noisy import DEFAULT_SIGMA0, set_noise, with_noisy_layers
from zoo.schema.names import NOISY_EVAL_MODES

# (out_channels, kernel_size, stride) of each convolution.
ConvSpec = tuple[tuple[int, int, int], ...]


class AtariConvTrunk(BaseFeaturesExtractor):
    """The convolutional layers of an Atari Q-network; its features are the flattened maps."""

    CONV_LAYERS: ClassVar[ConvSpec] = ()
    HIDDEN_LAYERS: ClassVar[tuple[int, ...]] = ()  # the paper's fully connected layers

    def __init__(self, observation_space: gym.spaces.Box) -> None:
        channels = int(observation_space.shape[0])
        layers: list[nn.Module] = []
        for out_channels, kernel, stride in self.CONV_LAYERS:
            layers += [nn.Conv2d(channels, out_channels, kernel, stride), nn.ReLU()]
            channels = out_channels
        convs = nn.Sequential(*layers, nn.Flatten())
        with th.no_grad():
            sample = th.as_tensor(observation_space.sample()[None]).float()
            features_dim = int(convs(sample).shape[1])
        super().__init__(observation_space, features_dim)
        self.convs = convs

    def forward(self, observations: th.Tensor) -> th.Tensor:
        result: th.Tensor = self.convs(observations)
        return result


class Nature2015Trunk(AtariConvTrunk):
    """Mnih et al. 2015: 32 8x8/4, 64 4x4/2, 64 3x3/1 convolutions, then 512 units."""

    CONV_LAYERS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
    HIDDEN_LAYERS = (512,)


class DQN2013Trunk(AtariConvTrunk):
    """Mnih et al. 2013: 16 8x8/4 and 32 4x4/2 convolutions, then 256 units."""

    CONV_LAYERS = ((16, 8, 4), (32, 4, 2))
    HIDDEN_LAYERS = (256,)


NETWORKS: Mapping[str, type[AtariConvTrunk]] = {
    "nature": Nature2015Trunk,
    "dqn2013": DQN2013Trunk,
}


def default_net_arch(features_extractor_class: type[BaseFeaturesExtractor]) -> list[int]:
    """Hidden layers after the extractor when `net_arch` is not given."""
    if issubclass(features_extractor_class, AtariConvTrunk):
        return list(features_extractor_class.HIDDEN_LAYERS)
    if issubclass(features_extractor_class, NatureCNN):
        return []  # NatureCNN already ends with its 512-unit layer
    return [64, 64]


class BoxPreprocessingDecidedOnce:
    """Network mixin: the preprocessing of a Box observation space (SB3's `preprocess_obs`:
    float, divided by 255 for images) decided when the network is built."""

    observation_space: spaces.Space
    normalize_images: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.box_scale: float | None = None  # None: not a Box, SB3 preprocesses
        if isinstance(self.observation_space, spaces.Box):
            scaled = self.normalize_images and is_image_space(self.observation_space)
            self.box_scale = 255.0 if scaled else 1.0

    def extract_features(
        self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor
    ) -> th.Tensor:
        if self.box_scale is None or not isinstance(obs, th.Tensor):
            return super().extract_features(obs, features_extractor)  # type: ignore[misc]
        observations = obs.float()
        if self.box_scale != 1.0:
            observations = observations / self.box_scale
        features: th.Tensor = features_extractor(observations)
        return features


class ZooQNetwork(BoxPreprocessingDecidedOnce, QNetwork):
    pass


class ZooQuantileNetwork(BoxPreprocessingDecidedOnce, QuantileNetwork):
    pass


def dueling_combine(value: th.Tensor, advantage: th.Tensor, action_dim: int) -> th.Tensor:
    """Q = V + A - mean over actions of A; `action_dim` names the actions axis of `advantage`."""
    return value + advantage - advantage.mean(dim=action_dim, keepdim=True)


class DuelingQNetwork(ZooQNetwork):
    """QNetwork whose `q_net` is the advantage stream, plus a value stream of the same shape."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value_net = nn.Sequential(
            *create_mlp(self.features_dim, 1, self.net_arch, self.activation_fn)
        )

    def forward(self, obs: th.Tensor) -> th.Tensor:  # type: ignore[override]
        features = self.extract_features(obs, self.features_extractor)
        return dueling_combine(self.value_net(features), self.q_net(features), action_dim=1)


class DuelingQuantileNetwork(ZooQuantileNetwork):
    """Dueling over quantiles: each quantile of Q is V's quantile + A's - mean of A's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value_net = nn.Sequential(
            *create_mlp(self.features_dim, self.n_quantiles, self.net_arch, self.activation_fn)
        )

    def forward(self, obs: th.Tensor) -> th.Tensor:  # type: ignore[override]
        features = self.extract_features(obs, self.features_extractor)
        advantage = self.quantile_net(features).view(-1, self.n_quantiles, int(self.action_space.n))
        value = self.value_net(features).view(-1, self.n_quantiles, 1)
        return dueling_combine(value, advantage, action_dim=2)


class DuelingOption:
    """Policy mixin: `dueling` and `noisy` switches saved with the policy, and hidden layers
    that default to the features extractor's own (512 units for the Nature trunk, none after
    NatureCNN). With `noisy`, the head's linear layers are noisy (zoo/algorithms/noisy.py):
    noise on in training mode, off in evaluation mode unless `noisy_eval` is "sample"."""

    dueling: bool
    noisy: bool = False  # zips saved before noisy nets have none
    noisy_sigma: float = DEFAULT_SIGMA0
    noisy_eval: str = "mean"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: ProgressSchedule,
        dueling: bool = False,
        noisy: bool = False,
        noisy_sigma: float = DEFAULT_SIGMA0,
        noisy_eval: str = "mean",
        net_arch: list[int] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        **kwargs: Any,
    ) -> None:
        if noisy_eval not in NOISY_EVAL_MODES:
            raise ValueError(
                f"noisy_eval is one of {', '.join(NOISY_EVAL_MODES)}, not {noisy_eval!r}"
            )
        self.dueling = dueling
        self.noisy, self.noisy_sigma, self.noisy_eval = noisy, noisy_sigma, noisy_eval
        if net_arch is None:
            net_arch = default_net_arch(features_extractor_class)
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = super()._get_constructor_parameters()  # type: ignore[misc]
        noisy = {"noisy": True, "noisy_sigma": self.noisy_sigma, "noisy_eval": self.noisy_eval}
        return {**parameters, "dueling": self.dueling, **(noisy if self.noisy else {})}

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)  # type: ignore[misc]
        if self.noisy:
            acting = getattr(self, "_acting_noise", False)
            set_noise(self, mode or acting or self.noisy_eval == "sample")  # type: ignore[arg-type]

    @contextlib.contextmanager
    def noise_while_acting(self) -> Iterator[None]:
        """Noise on in every forward pass of the block, whatever the mode (SB3's predict
        puts the policy in evaluation mode): acting while training explores by its noise."""
        self._acting_noise = True
        set_noise(self, True)  # type: ignore[arg-type]
        try:
            yield
        finally:
            self._acting_noise = False
            self.set_training_mode(bool(self.training))  # type: ignore[attr-defined]

    def _with_noise_setting(self, network: nn.Module) -> nn.Module:
        """The network with noisy head layers when `noisy`, noise as in evaluation mode."""
        if self.noisy:
            with_noisy_layers(network, self.noisy_sigma)
            set_noise(network, self.noisy_eval == "sample")
        return network

    def _head_arguments(self) -> dict[str, Any]:
        """The arguments of the Q (or quantile) network, each with a features extractor."""
        arguments: dict[str, Any] = self._update_features_extractor(  # type: ignore[attr-defined]
            self.net_args,  # type: ignore[attr-defined]
            features_extractor=None,
        )
        return arguments


class PixelDefault:
    """Policy mixin: SB3's NatureCNN unless a features extractor is given, as in CnnPolicy."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: ProgressSchedule,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )


class QPolicy(DuelingOption, DQNPolicy):
    """DQN policy with an optional Dueling head; Atari trunks bring their own hidden layers."""

    def make_q_net(self) -> QNetwork:
        network = DuelingQNetwork if self.dueling else ZooQNetwork
        built = self._with_noise_setting(network(**self._head_arguments()))
        return built.to(self.device)  # type: ignore[return-value]


class CnnQPolicy(PixelDefault, QPolicy):
    pass


class QuantilePolicy(DuelingOption, QRDQNPolicy):
    """QR-DQN policy with an optional Dueling head; Atari trunks bring their own hidden layers."""

    def make_quantile_net(self) -> QuantileNetwork:
        network = DuelingQuantileNetwork if self.dueling else ZooQuantileNetwork
        built = self._with_noise_setting(network(**self._head_arguments()))
        return built.to(self.device)  # type: ignore[return-value]


class CnnQuantilePolicy(PixelDefault, QuantilePolicy):
    pass


def variant_policy_kwargs(
    policy_kwargs: Mapping[str, Any] | None,
    dueling: bool,
    network: str | None,
    noisy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """policy_kwargs with the Dueling switch, the noisy-net settings (`noisy`, `noisy_sigma`,
    `noisy_eval`; None: no noisy layers) and the named network's trunk folded in."""
    merged = dict(policy_kwargs or {})
    merged["dueling"] = dueling
    merged.update(noisy or {})
    if network is not None:
        if "features_extractor_class" in merged:
            raise ValueError("give either network or policy_kwargs.features_extractor_class")
        merged["features_extractor_class"] = NETWORKS[network]
    return merged
