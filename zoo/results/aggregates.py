"""Scores over runs (seeds): mean, median and IQM with 95% stratified bootstrap confidence
intervals, computed by rliable (Agarwal et al. 2021), the way the field reports few-run results.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_REPS = 20_000
BOOTSTRAP_SEED = 0  # the same scores give the same intervals every time
AGGREGATES = ("mean", "median", "iqm")


def human_normalized_fraction(score: float, random: float, human: float) -> float:
    """Of the way from random play (0) to the human score (1)."""
    return (score - random) / (human - random)


def interval_estimates(
    scores: Sequence[float], reps: int = BOOTSTRAP_REPS
) -> dict[str, tuple[float, float, float]]:
    """(point, CI low, CI high) of the mean, median and IQM of per-run scores (one game)."""
    from rliable import library, metrics

    def aggregates(matrix: np.ndarray) -> np.ndarray:
        # rliable's aggregate_median is a median over games of per-game means: for one game
        # that is the mean, so the median over runs is numpy's, bootstrapped the same way.
        return np.array(
            [metrics.aggregate_mean(matrix), np.median(matrix), metrics.aggregate_iqm(matrix)]
        )

    matrix = np.asarray(scores, dtype=np.float64).reshape(-1, 1)  # runs x 1 task
    # rliable's StratifiedBootstrap draws its resamples from numpy's global generator and
    # ignores `random_state`, so the global generator is seeded here, and given back as it was.
    outside_state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        points, intervals = library.get_interval_estimates({"runs": matrix}, aggregates, reps=reps)
    finally:
        np.random.set_state(outside_state)
    return {
        name: (
            float(points["runs"][i]),
            float(intervals["runs"][0][i]),
            float(intervals["runs"][1][i]),
        )
        for i, name in enumerate(AGGREGATES)
    }
