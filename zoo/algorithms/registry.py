"""The names of `names.py` that stand for classes here, mapped to those classes.

Configuration never reaches `eval`: a name not listed in `names.py` is a validation error.
Q-networks, TD losses and replay buffers are mapped beside their code (q_networks.NETWORKS,
temporal_difference.TD_LOSSES, temporal_difference.REPLAY_BUFFER_CLASSES).
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.torch_layers import FlattenExtractor, NatureCNN
from stable_baselines3.dqn.policies import DQNPolicy

from zoo.algorithms.algos import (
    ZooA2C,
    ZooC51,
    ZooDQN,
    ZooPPO,
    ZooQRDQN,
    ZooRecurrentPPO,
    ZooTRPO,
)
from zoo.algorithms.distributional import CategoricalPolicy
from zoo.algorithms.optimizers import DeepMindRMSprop
from zoo.algorithms.ram_extractor import ScaledFlattenExtractor

# Subclasses of SB3's DQN, A2C, PPO and sb3-contrib's QRDQN, RecurrentPPO and TRPO (under
# rl_zoo3's names); zips load with the plain classes (C51's with DQN's, zoo importable: its
# policy is zoo's).
ALGORITHMS: Mapping[str, type[BaseAlgorithm]] = {
    "dqn": ZooDQN,
    "a2c": ZooA2C,
    "qrdqn": ZooQRDQN,
    "c51": ZooC51,
    "ppo": ZooPPO,
    "ppo_lstm": ZooRecurrentPPO,
    "trpo": ZooTRPO,
}

# The action spaces each algorithm takes, as SB3's constructors declare them
# (`supported_action_spaces`); tests/test_rl_zoo3_runs.py checks them against SB3.
ACTION_SPACES: Mapping[str, tuple[type[spaces.Space[Any]], ...]] = {
    "dqn": (spaces.Discrete,),
    "qrdqn": (spaces.Discrete,),
    "c51": (spaces.Discrete,),
    "a2c": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "ppo": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "ppo_lstm": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "trpo": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
}

# The Q-learning algorithm of each policy class (the first that a policy is a subclass of:
# C51's policy is a DQN policy), by which a saved zip is told apart.
Q_POLICY_ALGORITHMS: tuple[tuple[type[BasePolicy], type[BaseAlgorithm]], ...] = (
    (QRDQNPolicy, ZooQRDQN),
    (CategoricalPolicy, ZooC51),
    (DQNPolicy, ZooDQN),
)


def algorithm_saving(policy_class: type, saved: Collection[str]) -> type[BaseAlgorithm] | None:
    """The zoo algorithm whose zips hold `policy_class` and the attributes `saved`; None if
    no algorithm of zoo's saves that policy. A2C, PPO and TRPO share the policy class: PPO
    saves a clip range, TRPO its conjugate gradient damping."""
    for policies, algorithm in Q_POLICY_ALGORITHMS:
        if issubclass(policy_class, policies):
            return algorithm
    if issubclass(policy_class, RecurrentActorCriticPolicy):
        return ZooRecurrentPPO
    if issubclass(policy_class, ActorCriticPolicy):
        if "cg_damping" in saved:
            return ZooTRPO
        return ZooPPO if "clip_range" in saved else ZooA2C
    return None


OPTIMIZERS: Mapping[str, type[th.optim.Optimizer]] = {
    "adam": th.optim.Adam,
    "adamw": th.optim.AdamW,
    "rmsprop": th.optim.RMSprop,
    "rmsprop_tf_like": RMSpropTFLike,
    "rmsprop_deepmind": DeepMindRMSprop,  # the DQN papers': centred, eps inside the root
    "sgd": th.optim.SGD,
}

ACTIVATIONS: Mapping[str, type[th.nn.Module]] = {
    "relu": th.nn.ReLU,
    "tanh": th.nn.Tanh,
    "elu": th.nn.ELU,
    "leaky_relu": th.nn.LeakyReLU,
    "gelu": th.nn.GELU,
}

FEATURES_EXTRACTORS: Mapping[str, type[th.nn.Module]] = {
    "nature_cnn": NatureCNN,
    "flatten": FlattenExtractor,
    "scaled_flatten": ScaledFlattenExtractor,
}

# policy_kwargs entries whose YAML value is a name from one of the tables above.
NAMED_POLICY_KWARGS: Mapping[str, Mapping[str, Any]] = {
    "optimizer_class": OPTIMIZERS,
    "activation_fn": ACTIVATIONS,
    "features_extractor_class": FEATURES_EXTRACTORS,
}


def resolve_policy_kwargs(policy_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Turn validated YAML policy_kwargs into SB3's: names become classes, nulls mean default."""
    resolved: dict[str, Any] = {}
    for key, value in policy_kwargs.items():
        if value is None:
            continue
        table = NAMED_POLICY_KWARGS.get(key)
        resolved[key] = table[value] if table is not None else _plain(value)
    return resolved


def _plain(value: Any) -> Any:
    """Copy nested YAML values, dropping null entries of mappings (they mean 'SB3 default')."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def constructor_defaults(algorithm: type[BaseAlgorithm]) -> dict[str, Any]:
    """Default of every keyword argument the algorithm's constructor takes, through the class
    hierarchy: zoo's subclasses add keywords and pass the rest on to SB3's constructor."""
    defaults: dict[str, Any] = {}
    for cls in reversed(algorithm.__mro__):
        init = cls.__dict__.get("__init__")
        if init is None or cls is object:
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = parameter.default
    return defaults
