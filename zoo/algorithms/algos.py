"""The algorithms `zoo` trains: SB3's DQN, A2C and PPO and sb3-contrib's QR-DQN, extended
through their template methods.

- Learning rate, epsilon, PPO's clip range and prioritized replay's beta follow zoo schedules
  of the global step, given to the constructor (`lr_step_schedule`, `epsilon_schedule`,
  `clip_step_schedule`, `priority_beta_schedule`) and saved with the model. SB3 computes
  them from the progress of the current `learn()` call, which restarts on resume. The
  names differ from SB3's own attributes (`lr_schedule`, `exploration_schedule`,
  `clip_range`), which stay SB3's progress schedules.
- DQN and QR-DQN gain Double Q-learning targets (the online network picks the next action,
  the target network values it), a Dueling head, the 2013/2015 DeepMind networks, and for DQN
  a choice of Huber or MSE loss. SB3's n-step replay composes with all of them.
- `replay_buffer="frames"` stores pixel frames once (zoo/replay/frame_buffer.py), n-step returns
  included; `"sb3"` keeps SB3's own buffers. `prioritized_replay` draws from the frame buffer
  by priority (zoo/replay/prioritized.py) and weights the losses by importance.

Saved zips load with `ZooDQN.load` (or plain `DQN.load`), and likewise for the others.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch as th
import torch.nn.functional as F
from sb3_contrib import QRDQN
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import ReplayBufferSamples, TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import FloatSchedule, update_learning_rate
from stable_baselines3.common.vec_env import VecEnv

from zoo.algorithms.augmentation import AUGMENTATIONS
from zoo.algorithms.q_networks import (
    NETWORKS,
    CnnQPolicy,
    CnnQuantilePolicy,
    QPolicy,
    QuantilePolicy,
    variant_policy_kwargs,
)
from zoo.replay.frame_buffer import FrameReplayBuffer
from zoo.replay.prioritized import PrioritizedFrameReplayBuffer
from zoo.schema.names import FRAME_STORES
from zoo.schema.schedules import Schedule

# Each takes (input, target, reduction="mean"|"none").
TD_LOSSES: Mapping[str, Callable[..., th.Tensor]] = {
    "huber": F.smooth_l1_loss,  # Huber with delta 1: the 2015 paper's error clipping
    "mse": F.mse_loss,
}

# Importance-sampling exponent of prioritized replay when no schedule was given (Schaul et
# al. 2016 anneal it from 0.4 to 1; zoo's configs do so over the run).
DEFAULT_PRIORITY_BETA = 0.4

# `replay_buffer`: the class that stores transitions (None: SB3 picks its own, n-step or not).
REPLAY_BUFFER_CLASSES: Mapping[str, type[FrameReplayBuffer] | None] = {
    "frames": FrameReplayBuffer,
    "sb3": None,
}


class ChannelsLastConvolutions:
    """Mixin for any SB3 algorithm: convolution weights are stored channels-last (NHWC).

    PyTorch's CPU convolutions (oneDNN) then run in that layout, converting each batch of
    observations on the way in: the same network and the same numbers up to rounding, with
    a backward pass about 1.3x faster on a 2-core CPU (README "Env backends"). Applied
    where SB3 builds (or, on load, rebuilds) the policy, before any optimizer state exists,
    so a loaded model trains in the same layout. MLP policies have no 4-D weights and are
    left as they are.
    """

    policy: Any
    channels_last: bool = True

    def __init__(self, *args: Any, channels_last: bool = True, **kwargs: Any) -> None:
        self.channels_last = channels_last
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        if self.channels_last:
            self.policy.to(memory_format=th.channels_last)


# Each way zoo's optimizers differ from the ones SB3 builds from the same settings: the
# param_group entry and why. Nothing else differs (tests/test_optimizer_defaults.py).
OPTIMIZER_DIFFERENCES_FROM_SB3: Mapping[str, str] = MappingProxyType(
    {"fused": "Adam and AdamW update all weights in one fused kernel (fused_adam): the same update"}
)

# PyTorch runs fused Adam on the CPU from 2.4 (on CUDA earlier).
FUSED_ADAM_AVAILABLE = tuple(int(part) for part in th.__version__.split(".")[:2]) >= (2, 4)


def with_fused_kernel(optimizer: th.optim.Optimizer) -> th.optim.Optimizer:
    """An Adam or AdamW rebuilt from its own param groups with `fused=True`: every setting
    SB3 chose (PPO's and A2C's eps 1e-5 when optimizer_kwargs is not given) stays as it is.
    Other optimizers, and one whose `fused` or `foreach` the user set, are returned as they are."""
    chosen = any(optimizer.defaults.get(key) is not None for key in ("fused", "foreach"))
    if chosen or not FUSED_ADAM_AVAILABLE:
        return optimizer
    for adam in (th.optim.Adam, th.optim.AdamW):
        if type(optimizer) is adam:  # not a subclass: its constructor may differ
            return adam([{**group, "fused": True} for group in optimizer.param_groups], fused=True)
    return optimizer


class FusedAdam:
    """Mixin for any SB3 algorithm: the Adam or AdamW SB3 builds for the policy takes its
    step in one fused kernel, the same update with the weights read and written once (on a
    2-core CPU 4.5 ms instead of 15 for the Dueling DQN's 6.5M weights). Done after SB3 has
    built the optimizer, so SB3's defaults stay SB3's. A loaded model's saved optimizer
    state brings back the groups it was saved with."""

    policy: Any
    fused_adam: bool = True

    def __init__(self, *args: Any, fused_adam: bool = True, **kwargs: Any) -> None:
        self.fused_adam = fused_adam
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        if self.fused_adam:
            self.policy.optimizer = with_fused_kernel(self.policy.optimizer)


def _take_step_zero_value(
    kwargs: dict[str, Any], key: str, schedule: Schedule, schedule_name: str
) -> None:
    """Set SB3's constructor argument `key` to the schedule's value at step 0, where the
    schedule takes over from; a value given as well would be a second, conflicting one."""
    if kwargs.get(key) is not None:
        raise ValueError(f"give either {key} or {schedule_name}, not both")
    kwargs[key] = schedule.value(0)


class StepScheduledLearningRate:
    """Mixin for any SB3 algorithm: the optimizer's learning rate = `lr_step_schedule` of
    num_timesteps; without one, SB3's `learning_rate` (a number or a progress schedule).

    The schedule's step-0 value becomes SB3's `learning_rate`, so the optimizer starts
    there. Like every attribute, the schedule is saved in the zip and restored on load.
    """

    lr_step_schedule: Schedule | None
    num_timesteps: int
    logger: Any

    def __init__(self, *args: Any, lr_step_schedule: Schedule | None = None, **kwargs: Any) -> None:
        self.lr_step_schedule = lr_step_schedule
        if lr_step_schedule is not None:
            _take_step_zero_value(kwargs, "learning_rate", lr_step_schedule, "lr_step_schedule")
        super().__init__(*args, **kwargs)

    def _update_learning_rate(self, optimizers: Any) -> None:
        if self.lr_step_schedule is None:
            super()._update_learning_rate(optimizers)  # type: ignore[misc]
            return
        learning_rate = self.lr_step_schedule.value(self.num_timesteps)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            update_learning_rate(optimizer, learning_rate)


class StepScheduledClipRange:
    """Mixin for PPO: the clip ranges of each gradient phase = their schedules of
    num_timesteps (`clip_step_schedule` for the policy, `clip_vf_step_schedule` for the
    value function).

    SB3's PPO reads `clip_range(progress_remaining)` and `clip_range_vf(...)` at the start of
    `train()`; the callables are replaced there by the schedules' values at the global step,
    so they do not restart with a resumed run's `learn()` call.
    """

    clip_step_schedule: Schedule | None
    clip_vf_step_schedule: Schedule | None = None  # zips saved before it have none
    clip_range: Any
    clip_range_vf: Any
    num_timesteps: int

    def __init__(
        self,
        *args: Any,
        clip_step_schedule: Schedule | None = None,
        clip_vf_step_schedule: Schedule | None = None,
        **kwargs: Any,
    ) -> None:
        self.clip_step_schedule = clip_step_schedule
        self.clip_vf_step_schedule = clip_vf_step_schedule
        if clip_step_schedule is not None:
            _take_step_zero_value(kwargs, "clip_range", clip_step_schedule, "clip_step_schedule")
        if clip_vf_step_schedule is not None:
            _take_step_zero_value(
                kwargs, "clip_range_vf", clip_vf_step_schedule, "clip_vf_step_schedule"
            )
        super().__init__(*args, **kwargs)

    def train(self) -> None:
        if self.clip_step_schedule is not None:
            self.clip_range = FloatSchedule(self.clip_step_schedule.value(self.num_timesteps))
        if self.clip_vf_step_schedule is not None:
            value = self.clip_vf_step_schedule.value(self.num_timesteps)
            self.clip_range_vf = FloatSchedule(value)
        super().train()  # type: ignore[misc]


class StepScheduledExploration(StepScheduledLearningRate):
    """Mixin for DQN-like algorithms: epsilon = `epsilon_schedule` of num_timesteps (or
    episodes); without one, SB3's `exploration_schedule` of the run's progress."""

    epsilon_schedule: Schedule | None
    exploration_rate: float
    _episode_num: int

    def __init__(self, *args: Any, epsilon_schedule: Schedule | None = None, **kwargs: Any) -> None:
        self.epsilon_schedule = epsilon_schedule
        super().__init__(*args, **kwargs)

    def _on_step(self) -> None:
        super()._on_step()  # type: ignore[misc]  # target network updates, SB3's epsilon
        if self.epsilon_schedule is not None:
            schedule = self.epsilon_schedule
            count = self._episode_num if schedule.unit == "episodes" else self.num_timesteps
            self.exploration_rate = schedule.value(count)
            self.logger.record("rollout/exploration_rate", self.exploration_rate)


def next_q_values(
    online: Callable[[th.Tensor], th.Tensor],
    target: Callable[[th.Tensor], th.Tensor],
    next_observations: th.Tensor,
    double_q: bool,
) -> th.Tensor:
    """Value of the greedy next action, shape (batch, 1): chosen by the target network itself
    (DQN) or by the online network (Double DQN), valued by the target network either way.
    A target that is the online network itself is asked once."""
    target_q = target(next_observations)
    chooser = online(next_observations) if double_q and online is not target else target_q
    return target_q.gather(dim=1, index=chooser.argmax(dim=1, keepdim=True))


def next_quantiles(
    online: Callable[[th.Tensor], th.Tensor],
    target: Callable[[th.Tensor], th.Tensor],
    next_observations: th.Tensor,
    double_q: bool,
) -> th.Tensor:
    """Target quantiles (batch, n_quantiles) of the greedy next action (by mean over quantiles),
    chosen by the target network or, for Double QR-DQN, by the online network."""
    target_quantiles = target(next_observations)  # (batch, n_quantiles, n_actions)
    chooser = online(next_observations) if double_q and online is not target else target_quantiles
    greedy = chooser.mean(dim=1, keepdim=True).argmax(dim=2, keepdim=True)
    greedy = greedy.expand(-1, target_quantiles.shape[1], 1)
    return target_quantiles.gather(dim=2, index=greedy).squeeze(dim=2)


def quantile_huber_losses(current: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """sb3-contrib's quantile Huber loss (summed over quantiles) of each transition,
    shape (batch,); their mean is sb3-contrib's `quantile_huber_loss`."""
    n_quantiles = current.shape[-1]
    tau = (th.arange(n_quantiles, device=current.device, dtype=th.float) + 0.5) / n_quantiles
    delta = targets.unsqueeze(-2) - current.unsqueeze(-1)  # (batch, current, target)
    huber = th.where(delta.abs() > 1, delta.abs() - 0.5, delta**2 * 0.5)
    weighted = th.abs(tau.view(1, -1, 1) - (delta.detach() < 0).float()) * huber
    return weighted.sum(dim=-2).mean(dim=-1)


class ExactStepBudget:
    """Mixin for off-policy algorithms: the last rollout is cut short so that training stops
    at the step budget (rounded up to a multiple of n_envs) instead of a whole `train_freq`
    past it, so a run and its checkpoints end exactly where -n says."""

    num_timesteps: int
    _total_timesteps: int

    def collect_rollouts(
        self, env: VecEnv, callback: Any, train_freq: TrainFreq, *args: Any, **kwargs: Any
    ) -> Any:
        remaining = self._total_timesteps - self.num_timesteps
        if train_freq.unit == TrainFrequencyUnit.STEP and remaining < (
            train_freq.frequency * env.num_envs
        ):
            steps = max(1, -(-remaining // env.num_envs))
            train_freq = TrainFreq(steps, train_freq.unit)
        return super().collect_rollouts(env, callback, train_freq, *args, **kwargs)  # type: ignore[misc]


class TemporalDifferenceTraining:
    """Mixin replacing SB3's gradient phase of DQN-like algorithms by one that asks `td_loss`
    for the loss of a sampled batch; everything around it is as in SB3.

    Gradient steps wait until the buffer holds `learning_starts` transitions, which only
    matters when a run resumes without its saved buffer. With `random_warmup` false the
    policy (with its epsilon) acts before `learning_starts` instead of uniform random play.
    `replay_buffer` names the buffer (REPLAY_BUFFER_CLASSES); the frame buffer gets `n_steps`
    and `gamma` from the algorithm, as SB3 gives them to its n-step buffer.
    `prioritized_replay` (frame buffer only) draws by priority with exponent
    `priority_alpha`, weights each loss by its importance weight (exponent:
    `priority_beta_schedule` of the global step) and sets priorities to the per-sample
    errors of `td_losses` plus `priority_epsilon`.
    `augmentation` (zoo/algorithms/augmentation.py) transforms the observations and next observations
    of every sampled pixel batch, each with its own random draws.
    """

    policy: Any
    replay_buffer: Any
    logger: Any
    max_grad_norm: Any  # float in SB3's DQN, float | None in QR-DQN (None: no clipping)
    learning_starts: int
    gamma: float
    n_steps: int
    replay_buffer_class: type[Any] | None
    replay_buffer_kwargs: dict[str, Any]
    random_warmup: bool = True
    prioritized_replay: bool = False
    augmentation: str | None = None
    online_as_target: bool = False  # this gradient step's target network is the online one
    observation_space: Any
    priority_beta_schedule: Schedule | None
    num_timesteps: int
    _n_updates: int
    _vec_normalize_env: Any
    _update_learning_rate: Callable[[Any], None]

    def __init__(
        self,
        *args: Any,
        double_q: bool = False,
        dueling: bool = False,
        network: str | None = None,
        random_warmup: bool = True,
        replay_buffer: str = "sb3",
        prioritized_replay: bool = False,
        priority_alpha: float = 0.6,
        priority_epsilon: float = 1e-6,
        frame_store: str = "host",
        priority_beta_schedule: Schedule | None = None,
        augmentation: str | None = None,
        **kwargs: Any,
    ) -> None:
        if augmentation is not None and augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augmentation {augmentation!r}; choose one of {', '.join(AUGMENTATIONS)}"
            )
        self.augmentation = augmentation
        if network is not None and network not in NETWORKS:
            raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
        if replay_buffer not in REPLAY_BUFFER_CLASSES:
            raise ValueError(
                f"unknown replay_buffer {replay_buffer!r}; choose one of {', '.join(REPLAY_BUFFER_CLASSES)}"
            )
        if frame_store not in FRAME_STORES:
            raise ValueError(
                f"unknown frame_store {frame_store!r}; choose one of {', '.join(FRAME_STORES)}"
            )
        self.double_q, self.dueling, self.network = double_q, dueling, network
        self.random_warmup = random_warmup
        self.priority_beta_schedule = priority_beta_schedule
        buffer_class = REPLAY_BUFFER_CLASSES[replay_buffer]
        self.prioritized_replay = prioritized_replay
        if prioritized_replay:
            if buffer_class is not FrameReplayBuffer:
                raise ValueError("prioritized_replay needs replay_buffer='frames'")
            buffer_class = PrioritizedFrameReplayBuffer
            kwargs["replay_buffer_kwargs"] = {
                **(kwargs.get("replay_buffer_kwargs") or {}),
                "alpha": priority_alpha,
                "epsilon": priority_epsilon,
            }
        if frame_store == "device":
            if buffer_class is None:
                raise ValueError("frame_store='device' needs replay_buffer='frames'")
            kwargs["replay_buffer_kwargs"] = {
                **(kwargs.get("replay_buffer_kwargs") or {}),
                "frames_on_device": True,
            }
        if buffer_class is not None:
            if kwargs.get("replay_buffer_class") is not None:
                raise ValueError("give either replay_buffer or replay_buffer_class")
            kwargs["replay_buffer_class"] = buffer_class
        kwargs["policy_kwargs"] = variant_policy_kwargs(
            kwargs.get("policy_kwargs"), dueling, network
        )
        super().__init__(*args, **kwargs)
        if augmentation is not None and len(self.observation_space.shape) != 3:
            raise ValueError(
                f"augmentation {augmentation!r} shifts images; the observations here have shape "
                f"{self.observation_space.shape}"
            )

    def _setup_model(self) -> None:
        buffer_class = self.replay_buffer_class
        if buffer_class is None or not issubclass(buffer_class, FrameReplayBuffer):
            super()._setup_model()  # type: ignore[misc]
            return
        self.replay_buffer_kwargs.update({"n_steps": self.n_steps, "gamma": self.gamma})
        with warnings.catch_warnings():
            # SB3 warns that it sets up n-step returns only for its own buffer; this one
            # has just been given them.
            warnings.filterwarnings("ignore", message=r".*is ignored because a custom")
            super()._setup_model()  # type: ignore[misc]

    def td_loss(self, batch: ReplayBufferSamples) -> th.Tensor:
        raise NotImplementedError

    def td_losses(self, batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        """Per transition: the loss (batch,) and the error its priority is made of."""
        raise NotImplementedError

    def _stored_transitions(self) -> int:
        return int(self.replay_buffer.size()) * int(self.replay_buffer.n_envs)

    def _transitions_before_learning(self) -> int:
        capacity = int(self.replay_buffer.buffer_size) * int(self.replay_buffer.n_envs)
        return max(1, min(int(self.learning_starts), capacity))

    def _sample_action(self, learning_starts: int, *args: Any, **kwargs: Any) -> Any:
        # random_warmup false (a warm start): the policy acts while the buffer fills.
        if not self.random_warmup:
            learning_starts = 0
        return super()._sample_action(learning_starts, *args, **kwargs)  # type: ignore[misc]

    def discounts(self, batch: ReplayBufferSamples) -> th.Tensor | float:
        """gamma, or gamma**k per sample from SB3's n-step buffer (k < n when a game ended)."""
        return batch.discounts if batch.discounts is not None else self.gamma

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self._stored_transitions() < self._transitions_before_learning():
            return  # a run resumed without its replay buffer refills it first
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        prioritized = isinstance(self.replay_buffer, PrioritizedFrameReplayBuffer)
        losses = []
        for step in range(gradient_steps):
            # Only the first step of a phase can find the target just copied from the online
            # network (after a step it has moved).
            self.online_as_target = step == 0 and self.target_holds_online_weights()
            if prioritized:
                loss = self._prioritized_loss(batch_size)
            else:
                batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                loss = self.td_loss(self.augmented(batch))
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            if self.max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))

    def online_and_target(self) -> tuple[th.nn.Module, th.nn.Module]:
        raise NotImplementedError

    def target_holds_online_weights(self) -> bool:
        """Whether the target network's weights are the online network's (SB3 copies them
        after each step when tau is 1 and target_update_interval 1, as in drq_eps). Its
        forward pass then gives the online network's values, so the update asks the online
        network once instead of both: comparing the weights costs far less than a forward
        pass. (The networks hold no noise and no batch statistics, so equal weights give
        equal values in training and in evaluation mode.)"""
        online, target = self.online_and_target()
        return all(
            th.equal(mine, theirs)
            for mine, theirs in zip(
                online.state_dict().values(), target.state_dict().values(), strict=True
            )
        )

    def augmented(self, batch: ReplayBufferSamples) -> ReplayBufferSamples:
        """The batch with its observations and next observations augmented apart."""
        if self.augmentation is None:
            return batch
        augment = AUGMENTATIONS[self.augmentation]
        return batch._replace(
            observations=augment(batch.observations),
            next_observations=augment(batch.next_observations),
        )

    def priority_beta(self) -> float:
        schedule = self.priority_beta_schedule
        return DEFAULT_PRIORITY_BETA if schedule is None else schedule.value(self.num_timesteps)

    def _prioritized_loss(self, batch_size: int) -> th.Tensor:
        """The importance-weighted loss of a batch drawn by priority; the batch's
        priorities become its new errors."""
        beta = self.priority_beta()
        self.logger.record("train/priority_beta", beta)
        batch, leaves, weights = self.replay_buffer.sample_prioritized(
            batch_size, beta, env=self._vec_normalize_env
        )
        losses, errors = self.td_losses(self.augmented(batch))
        self.replay_buffer.update_priorities(leaves, errors)
        return (weights[:, 0] * losses).mean()


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
    ChannelsLastConvolutions, FusedAdam, StepScheduledClipRange, StepScheduledLearningRate, PPO
):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # A batch size that does not divide the rollout: training says so in one line
            # (zoo.config.config.minibatch_note) instead of SB3's warning with its source line.
            warnings.filterwarnings("ignore", message=r"You have specified a mini-batch size")
            super().__init__(*args, **kwargs)
