"""Feature extractors that SB3 does not ship."""

from __future__ import annotations

import gymnasium as gym
import torch as th
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor


class ScaledFlattenExtractor(BaseFeaturesExtractor):
    """Flattens byte observations (Atari RAM) and scales them to [0, 1].

    SB3 only rescales image observations; RAM bytes would otherwise reach the MLP as 0..255.
    """

    def __init__(self, observation_space: gym.spaces.Box, scale: float = 255.0) -> None:
        super().__init__(
            observation_space, features_dim=int(gym.spaces.utils.flatdim(observation_space))
        )
        self.scale = scale
        self.flatten = th.nn.Flatten()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.flatten(observations) / self.scale
