"""The torch-free names of names.py are exactly those the registry maps to classes."""

from __future__ import annotations

from zoo.algorithms import registry
from zoo.algorithms.q_networks import NETWORKS
from zoo.algorithms.temporal_difference import REPLAY_BUFFER_CLASSES, TD_LOSSES
from zoo.schema import names


def test_each_name_maps_to_a_class_in_the_same_order() -> None:
    assert tuple(registry.OPTIMIZERS) == names.OPTIMIZERS
    assert tuple(registry.ACTIVATIONS) == names.ACTIVATIONS
    assert tuple(registry.FEATURES_EXTRACTORS) == names.FEATURES_EXTRACTORS
    assert tuple(NETWORKS) == names.Q_NETWORKS
    assert tuple(TD_LOSSES) == names.LOSSES
    assert tuple(REPLAY_BUFFER_CLASSES) == names.REPLAY_BUFFERS


def test_every_algorithm_has_every_policy_name() -> None:
    for algo, algorithm in registry.ALGORITHMS.items():
        policies = names.RECURRENT_POLICIES if algo == "ppo_lstm" else names.POLICIES
        assert set(policies) <= set(algorithm.policy_aliases), algorithm.__name__
