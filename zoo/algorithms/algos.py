"""The algorithms `zoo` trains: SB3's DQN, A2C and PPO and sb3-contrib's QR-DQN, RecurrentPPO
and TRPO, extended through their template methods, and C51 on SB3's DQN.

- Learning rate, epsilon, PPO's clip range and prioritized replay's beta follow zoo schedules
  of the global step, given to the constructor (`lr_step_schedule`, `epsilon_schedule`,
  `clip_step_schedule`, `priority_beta_schedule`) and saved with the model. SB3 computes
  them from the progress of the current `learn()` call, which restarts on resume. The
  names differ from SB3's own attributes (`lr_schedule`, `exploration_schedule`,
  `clip_range`), which stay SB3's progress schedules.
- DQN, QR-DQN and C51 gain Double Q-learning targets (the online network picks the next
  action, the target network values it), a Dueling head, noisy nets (zoo/algorithms/noisy.py),
  the 2013/2015 DeepMind networks, and for DQN a choice of Huber or MSE loss. SB3's n-step
  replay composes with all of them.
- `replay_buffer="frames"` stores pixel frames once (zoo/replay/frame_buffer.py), n-step returns
  included; `"sb3"` keeps SB3's own buffers. `prioritized_replay` draws from the frame buffer
  by priority (zoo/replay/prioritized.py) and weights the losses by importance.

Each class composes the mixins of zoo/algorithms/mixins.py (schedules, fused Adam,
channels-last weights, exact step budget) and, for DQN, QR-DQN and C51, the TD update of
zoo/algorithms/temporal_difference.py, and says only what differs between them: its networks,
its loss. Saved zips load with `ZooDQN.load` (or plain `DQN.load`), and likewise for the others.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch as th
from sb3_contrib import QRDQN, TRPO, RecurrentPPO
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from zoo.algorithms.distributional import (
    DEFAULT_ATOMS,
    DEFAULT_V_MAX,
    DEFAULT_V_MIN,
    CategoricalPolicy,
    CategoricalQNetwork,
    CnnCategoricalPolicy,
    check_support,
    cross_entropies,
    kl_divergences,
    next_distribution,
    project_distribution,
)
from zoo.algorithms.mixins import (
    ChannelsLastConvolutions,
    ExactStepBudget,
    FusedAdam,
    MinibatchNoteNotWarning,
    StepScheduledClipRange,
    StepScheduledExploration,
    StepScheduledLearningRate,
)
from zoo.algorithms.q_networks import CnnQPolicy, CnnQuantilePolicy, QPolicy, QuantilePolicy
from zoo.algorithms.temporal_difference import (
    TD_LOSSES,
    TemporalDifferenceTraining,
    next_q_values,
    next_quantiles,
    quantile_huber_losses,
)


class ZooDQN(
    ChannelsLastConvolutions,
    FusedAdam,
    ExactStepBudget,
    TemporalDifferenceTraining,
    StepScheduledExploration,
    DQN,
):
    """SB3's DQN with Double Q-learning, a Dueling head, the paper networks and a loss choice."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": QPolicy,
        "CnnPolicy": CnnQPolicy,
    }

    def __init__(self, *args: Any, loss: str = "huber", **kwargs: Any) -> None:
        if loss not in TD_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(TD_LOSSES)}")
        self.loss = loss
        super().__init__(*args, **kwargs)

    def online_and_target(self) -> tuple[th.nn.Module, th.nn.Module]:
        return self.q_net, self.q_net_target

    def td_loss(self, batch: ReplayBufferSamples) -> th.Tensor:
        current, targets = self._values_and_targets(batch)
        return TD_LOSSES[self.loss](current, targets)

    def td_losses(self, batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        current, targets = self._values_and_targets(batch)
        losses = TD_LOSSES[self.loss](current, targets, reduction="none")[:, 0]
        return losses, (targets - current).detach().abs()[:, 0]

    def _values_and_targets(self, batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        """Q(s, a) of the batch (batch, 1) and its TD targets."""
        with th.no_grad():
            target_net = self.q_net if self.online_as_target else self.q_net_target
            next_values = next_q_values(
                self.q_net, target_net, batch.next_observations, self.double_q
            )
            targets = batch.rewards + (1 - batch.dones) * self.discounts(batch) * next_values
        current = self.q_net(batch.observations).gather(dim=1, index=batch.actions.long())
        return current, targets


class ZooC51(ZooDQN):
    """C51 (Bellemare et al. 2017) on SB3's DQN: return distributions on `n_atoms` atoms from
    `v_min` to `v_max`, the projected distributional Bellman target (with n-step returns and
    Double Q-learning: Rainbow's combination) and the cross-entropy loss; a prioritized
    replay's priorities are the KL divergences (zoo/algorithms/distributional.py)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": CategoricalPolicy,
        "CnnPolicy": CnnCategoricalPolicy,
    }

    def __init__(
        self,
        *args: Any,
        n_atoms: int = DEFAULT_ATOMS,
        v_min: float = DEFAULT_V_MIN,
        v_max: float = DEFAULT_V_MAX,
        **kwargs: Any,
    ) -> None:
        check_support(n_atoms, v_min, v_max)
        self.n_atoms, self.v_min, self.v_max = n_atoms, v_min, v_max
        support = {"n_atoms": n_atoms, "v_min": v_min, "v_max": v_max}
        kwargs["policy_kwargs"] = {**(kwargs.get("policy_kwargs") or {}), **support}
        super().__init__(*args, **kwargs)

    def td_loss(self, batch: ReplayBufferSamples) -> th.Tensor:
        log_probabilities, targets = self._log_probabilities_and_targets(batch)
        return cross_entropies(log_probabilities, targets).mean()

    def td_losses(self, batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        log_probabilities, targets = self._log_probabilities_and_targets(batch)
        priorities = kl_divergences(log_probabilities.detach(), targets)
        return cross_entropies(log_probabilities, targets), priorities

    def _log_probabilities_and_targets(
        self, batch: ReplayBufferSamples
    ) -> tuple[th.Tensor, th.Tensor]:
        """log p(s, a) of the batch's actions (batch, n_atoms) and the projected targets."""
        online = cast(CategoricalQNetwork, self.q_net)
        with th.no_grad():
            target_net = (
                online if self.online_as_target else cast(CategoricalQNetwork, self.q_net_target)
            )
            next_probabilities = next_distribution(
                online, target_net, batch.next_observations, self.double_q
            )
            targets = project_distribution(
                next_probabilities,
                batch.rewards,
                batch.dones,
                self.discounts(batch),
                online.support,
            )
        log_probabilities = online.log_probabilities(batch.observations)
        actions = batch.actions.long()[:, :, None].expand(-1, 1, log_probabilities.shape[-1])
        return log_probabilities.gather(dim=1, index=actions).squeeze(dim=1), targets


class ZooQRDQN(
    ChannelsLastConvolutions,
    FusedAdam,
    ExactStepBudget,
    TemporalDifferenceTraining,
    StepScheduledExploration,
    QRDQN,
):
    """sb3-contrib's QR-DQN with Double Q-learning, a Dueling head and the paper networks.
    The loss is always the quantile Huber loss of the QR-DQN paper."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": QuantilePolicy,
        "CnnPolicy": CnnQuantilePolicy,
    }

    def online_and_target(self) -> tuple[th.nn.Module, th.nn.Module]:
        return self.quantile_net, self.quantile_net_target

    def td_loss(self, batch: ReplayBufferSamples) -> th.Tensor:
        current, targets = self._quantiles_and_targets(batch)
        return quantile_huber_loss(current, targets, sum_over_quantiles=True)

    def td_losses(self, batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        current, targets = self._quantiles_and_targets(batch)
        losses = quantile_huber_losses(current, targets)
        return losses, losses.detach()  # the priority is the quantile loss itself

    def _quantiles_and_targets(self, batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        """The quantiles of Z(s, a) (batch, n_quantiles) and their target quantiles."""
        with th.no_grad():
            target_net = self.quantile_net if self.online_as_target else self.quantile_net_target
            next_values = next_quantiles(
                self.quantile_net, target_net, batch.next_observations, self.double_q
            )
            targets = batch.rewards + (1 - batch.dones) * self.discounts(batch) * next_values
        quantiles = self.quantile_net(batch.observations)  # (batch, n_quantiles, n_actions)
        actions = batch.actions[..., None].long().expand(-1, self.n_quantiles, 1)
        current = quantiles.gather(dim=2, index=actions).squeeze(dim=2)
        return current, targets


class ZooA2C(ChannelsLastConvolutions, FusedAdam, StepScheduledLearningRate, A2C):
    pass


class ZooPPO(
    ChannelsLastConvolutions,
    FusedAdam,
    MinibatchNoteNotWarning,
    StepScheduledClipRange,
    StepScheduledLearningRate,
    PPO,
):
    pass


class ZooRecurrentPPO(
    ChannelsLastConvolutions,
    FusedAdam,
    StepScheduledClipRange,
    StepScheduledLearningRate,
    RecurrentPPO,
):
    """sb3-contrib's RecurrentPPO (`ppo_lstm`): PPO with an LSTM after the features extractor.
    Its LSTM states start at zero when the model is built or loaded (sb3-contrib keeps them
    out of the zip), so a resumed run begins its first rollout with fresh states, as a new
    one does; within a run they carry over from one rollout to the next."""


class ZooTRPO(
    ChannelsLastConvolutions, FusedAdam, MinibatchNoteNotWarning, StepScheduledLearningRate, TRPO
):
    """sb3-contrib's TRPO: a natural-gradient policy step within a KL bound (`target_kl`),
    the critic fitted apart by Adam at `learning_rate`."""
