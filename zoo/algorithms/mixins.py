"""Mixins for SB3 algorithms, each changing one thing through SB3's template methods:
channels-last convolution weights, Adam's fused kernel, learning rate, epsilon and PPO's clip
ranges following zoo schedules of the global step, and an off-policy run that stops exactly at
its step budget.

SB3 computes its schedules from the progress of the current `learn()` call, which restarts on
resume; the schedules here (`lr_step_schedule`, `epsilon_schedule`, `clip_step_schedule`,
`clip_vf_step_schedule`) follow the global step, are given to the constructor and saved with
the model. Their names differ from SB3's own attributes (`lr_schedule`,
`exploration_schedule`, `clip_range`), which stay SB3's progress schedules.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import FloatSchedule, update_learning_rate
from stable_baselines3.common.vec_env import VecEnv

from zoo.schema.schedules import Schedule


class ChannelsLastConvolutions:
    """Mixin for any SB3 algorithm: convolution weights are stored channels-last (NHWC).

    PyTorch's CPU convolutions (oneDNN) then run in that layout, converting each batch of
    observations on the way in: the same network and the same numbers up to rounding, with
    a backward pass about 1.3x faster on a 2-core CPU (docs/guide/performance.md). Applied
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


class MinibatchNoteNotWarning:
    """PPO and TRPO warn, with their source line, when the batch size does not divide the
    rollout; training says so in one line instead (zoo.config.checks.minibatch_note)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"You have specified a mini-batch size")
            super().__init__(*args, **kwargs)
