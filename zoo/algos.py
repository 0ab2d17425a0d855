"""SB3 algorithms whose learning rate and epsilon follow zoo schedules of the global step.

SB3 computes both from the progress of the current `learn()` call, which restarts on
resume; these subclasses override the two template methods that set them.
"""

from __future__ import annotations

from typing import Any

from sb3_contrib import QRDQN
from stable_baselines3 import A2C, DQN
from stable_baselines3.common.utils import update_learning_rate

from zoo.schedules import Schedule


class StepScheduledLearningRate:
    """Mixin for any SB3 algorithm: the optimizer's learning rate = schedule(num_timesteps)."""

    lr_step_schedule: Schedule | None = None
    num_timesteps: int
    logger: Any

    def _update_learning_rate(self, optimizers: Any) -> None:
        if self.lr_step_schedule is None:
            super()._update_learning_rate(optimizers)  # type: ignore[misc]
            return
        learning_rate = self.lr_step_schedule.value(self.num_timesteps)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            update_learning_rate(optimizer, learning_rate)


class StepScheduledExploration(StepScheduledLearningRate):
    """Mixin for DQN-like algorithms: epsilon = schedule(num_timesteps or episodes)."""

    epsilon_schedule: Schedule | None = None
    exploration_rate: float
    _episode_num: int

    def _on_step(self) -> None:
        super()._on_step()  # type: ignore[misc]  # target network updates, SB3's epsilon
        if self.epsilon_schedule is not None:
            schedule = self.epsilon_schedule
            count = self._episode_num if schedule.unit == "episodes" else self.num_timesteps
            self.exploration_rate = schedule.value(count)
            self.logger.record("rollout/exploration_rate", self.exploration_rate)


class ScheduledDQN(StepScheduledExploration, DQN):
    pass


class ScheduledQRDQN(StepScheduledExploration, QRDQN):
    pass


class ScheduledA2C(StepScheduledLearningRate, A2C):
    pass
