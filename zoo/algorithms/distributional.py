"""C51 (Bellemare et al. 2017, "A Distributional Perspective on Reinforcement Learning"): the
return of each action as a categorical distribution on `n_atoms` evenly spaced atoms from
`v_min` to `v_max`, its networks (plain and Dueling, noisy or not) and the projected
distributional Bellman target.

The network's head gives n_actions x n_atoms logits; a softmax over the atoms gives each
action's probabilities, and Q(s, a) = sum_i p_i(s, a) z_i, which is what `forward` returns,
so SB3's greedy `predict` picks the action of highest mean. A Dueling head adds a value
stream of n_atoms logits: logits = V + A - mean over actions of A, then the softmax (as in
Rainbow, Hessel et al. 2018).

The target of a transition (r, done, discount g = gamma^k for k-step returns) is the next
state's distribution of the greedy action (chosen by the online network with Double
Q-learning, by the target network otherwise, valued by the target network) with each atom
moved to r + g z_j (r alone at a game's end), clipped to [v_min, v_max] and its probability
shared between the two nearest atoms in proportion to closeness (the paper's Algorithm 1;
written as Dopamine's `project_distribution`: atom i receives
sum_j clip(1 - |T z_j - z_i| / dz, 0, 1) p_j). The loss is the cross-entropy of the
predicted distribution against it; a prioritized replay's priority is the KL divergence
between the two (Rainbow), which has the same gradient.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from zoo.algorithms.q_networks import DuelingOption, PixelDefault, ZooQNetwork

DEFAULT_ATOMS = 51
DEFAULT_V_MIN, DEFAULT_V_MAX = -10.0, 10.0


def check_support(n_atoms: int, v_min: float, v_max: float) -> None:
    if n_atoms < 2:
        raise ValueError(f"n_atoms must be at least 2, got {n_atoms}")
    if not v_min < v_max:
        raise ValueError(f"v_min ({v_min}) must be below v_max ({v_max})")


class CategoricalQNetwork(ZooQNetwork):
    """A Q-network whose head gives each action's return distribution on `support`."""

    support: th.Tensor

    def __init__(
        self,
        *args: Any,
        n_atoms: int = DEFAULT_ATOMS,
        v_min: float = DEFAULT_V_MIN,
        v_max: float = DEFAULT_V_MAX,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_support(n_atoms, v_min, v_max)
        self.n_atoms = n_atoms
        self.register_buffer("support", th.linspace(v_min, v_max, n_atoms), persistent=False)
        actions = int(self.action_space.n)
        self.q_net = nn.Sequential(
            *create_mlp(self.features_dim, actions * n_atoms, self.net_arch, self.activation_fn)
        )

    def logits(self, obs: th.Tensor) -> th.Tensor:
        """Unnormalised log-probabilities, shape (batch, n_actions, n_atoms)."""
        features = self.extract_features(obs, self.features_extractor)
        return self.q_net(features).view(features.shape[0], -1, self.n_atoms)

    def log_probabilities(self, obs: th.Tensor) -> th.Tensor:
        return th.log_softmax(self.logits(obs), dim=-1)

    def forward(self, obs: th.Tensor) -> th.Tensor:  # type: ignore[override]
        """Q-values (batch, n_actions): each distribution's mean."""
        return q_values(th.softmax(self.logits(obs), dim=-1), self.support)


class DuelingCategoricalQNetwork(CategoricalQNetwork):
    """Dueling over logits: each atom's logit is V's + A's - mean over actions of A's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value_net = nn.Sequential(
            *create_mlp(self.features_dim, self.n_atoms, self.net_arch, self.activation_fn)
        )

    def logits(self, obs: th.Tensor) -> th.Tensor:
        features = self.extract_features(obs, self.features_extractor)
        advantage = self.q_net(features).view(features.shape[0], -1, self.n_atoms)
        value = self.value_net(features).view(-1, 1, self.n_atoms)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


def q_values(probabilities: th.Tensor, support: th.Tensor) -> th.Tensor:
    """The means of distributions (..., n_atoms) on `support`."""
    return (probabilities * support).sum(dim=-1)


def next_distribution(
    online: CategoricalQNetwork,
    target: CategoricalQNetwork,
    next_observations: th.Tensor,
    double_q: bool,
) -> th.Tensor:
    """The target network's distribution (batch, n_atoms) of the greedy next action, chosen by
    the online network (Double) or by the target network itself."""
    probabilities = th.softmax(target.logits(next_observations), dim=-1)
    if double_q and online is not target:
        chooser = online(next_observations)
    else:
        chooser = q_values(probabilities, target.support)
    greedy = chooser.argmax(dim=1)[:, None, None].expand(-1, 1, probabilities.shape[-1])
    return probabilities.gather(dim=1, index=greedy).squeeze(dim=1)


def project_distribution(
    next_probabilities: th.Tensor,
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    support: th.Tensor,
) -> th.Tensor:
    """The distribution of r + discount z (r at a game's end) projected onto `support`:
    shape (batch, n_atoms). `rewards`, `dones` and tensor `discounts` have shape (batch, 1)."""
    v_min, v_max = support[0], support[-1]
    spacing = (v_max - v_min) / (support.shape[0] - 1)
    moved = (rewards + (1 - dones) * discounts * support[None, :]).clamp(v_min, v_max)
    closeness = 1 - (moved[:, None, :] - support[None, :, None]).abs() / spacing
    weights = closeness.clamp(0, 1)  # (batch, target atom i, moved atom j)
    return (weights * next_probabilities[:, None, :]).sum(dim=-1)


def cross_entropies(log_probabilities: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """-sum_i target_i log p_i of each transition, shape (batch,)."""
    return -(targets * log_probabilities).sum(dim=-1)


def kl_divergences(log_probabilities: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """KL(target || p) of each transition, shape (batch,): the cross-entropy less the
    target's entropy (0 log 0 = 0)."""
    return (th.special.xlogy(targets, targets) - targets * log_probabilities).sum(dim=-1)


class CategoricalOption(DuelingOption):
    """Policy mixin: the support (`n_atoms`, `v_min`, `v_max`), saved with the policy."""

    def __init__(
        self,
        *args: Any,
        n_atoms: int = DEFAULT_ATOMS,
        v_min: float = DEFAULT_V_MIN,
        v_max: float = DEFAULT_V_MAX,
        **kwargs: Any,
    ) -> None:
        check_support(n_atoms, v_min, v_max)
        self.n_atoms, self.v_min, self.v_max = n_atoms, float(v_min), float(v_max)
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        parameters = super()._get_constructor_parameters()
        return {**parameters, "n_atoms": self.n_atoms, "v_min": self.v_min, "v_max": self.v_max}

    def _head_arguments(self) -> dict[str, Any]:
        support = {"n_atoms": self.n_atoms, "v_min": self.v_min, "v_max": self.v_max}
        return {**super()._head_arguments(), **support}


class CategoricalPolicy(CategoricalOption, DQNPolicy):
    """C51 policy with an optional Dueling head and noisy layers."""

    def make_q_net(self) -> QNetwork:
        network = DuelingCategoricalQNetwork if self.dueling else CategoricalQNetwork
        built = self._with_noise_setting(network(**self._head_arguments()))
        return built.to(self.device)  # type: ignore[return-value]


class CnnCategoricalPolicy(PixelDefault, CategoricalPolicy):
    pass
