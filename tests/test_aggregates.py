"""The confidence intervals of zoo.results.aggregates are rliable's, and the same every time."""

from __future__ import annotations

import numpy as np

from zoo.results.aggregates import interval_estimates


def test_the_same_scores_give_the_same_intervals_every_time() -> None:
    # rliable draws its resamples from numpy's global generator whatever random_state says; with
    # 500 resamples of these six scores, two unseeded calls differed in every lower bound.
    scores = [10.0, 30.0, 14.0, 3.0, 50.0, 7.0]
    first = interval_estimates(scores, reps=500)
    np.random.seed(123)  # whatever the caller did to the global generator in between
    np.random.random(17)
    assert interval_estimates(scores, reps=500) == first


def test_the_callers_global_generator_is_left_as_it_was() -> None:
    np.random.seed(5)
    expected = np.random.random(3)
    np.random.seed(5)
    interval_estimates([1.0, 2.0, 4.0], reps=200)
    assert np.array_equal(np.random.random(3), expected)
