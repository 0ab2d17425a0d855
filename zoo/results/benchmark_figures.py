"""rliable's figures (Agarwal et al. 2021) of benchmark results, drawn by rliable.plot_utils:
median, IQM, mean and optimality gap with 95% stratified-bootstrap CIs per config, performance
profiles, the probability of improvement of one config over another, and sample-efficiency
curves (the IQM of the evaluations over steps, with CI bands).

Every number comes from rliable's library and metrics; the bootstrap resamples from numpy's
global generator whatever rliable's `random_state` says, so it is seeded here (and given back
as it was): the same scores give the same figures every time.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from zoo.core.errors import UserError
from zoo.results.benchmark_scores import ScoreSet

BOOTSTRAP_REPS = 2_000  # rliable's own default for profiles; --bootstrap-reps for more
BOOTSTRAP_SEED = 0
METRICS = ("Median", "IQM", "Mean", "Optimality Gap")
PAIR_SEPARATOR = ";"  # rliable names a pair "X;Y"
PROFILE_THRESHOLDS = 101
_DPI = 150

Estimates = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # rliable's (points, intervals)


@contextlib.contextmanager
def seeded_bootstrap() -> Iterator[None]:
    outside_state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        yield
    finally:
        np.random.set_state(outside_state)


def metric_names(normalized: bool) -> tuple[str, ...]:
    """The optimality gap is the shortfall below human (1): raw scores have no such line."""
    return METRICS if normalized else METRICS[:3]


def aggregates(normalized: bool) -> Callable[[np.ndarray], np.ndarray]:
    from rliable import metrics

    def of(matrix: np.ndarray) -> np.ndarray:
        values = [
            metrics.aggregate_median(matrix),
            metrics.aggregate_iqm(matrix),
            metrics.aggregate_mean(matrix),
        ]
        if normalized:
            values.append(metrics.aggregate_optimality_gap(matrix))
        return np.array(values)

    return of


def interval_estimates(
    finals: Mapping[str, np.ndarray], normalized: bool, reps: int = BOOTSTRAP_REPS
) -> Estimates:
    """rliable's point estimates and 95% CIs of metric_names(normalized), per config."""
    from rliable import library

    with seeded_bootstrap():
        return library.get_interval_estimates(dict(finals), aggregates(normalized), reps=reps)


def profile_thresholds(finals: Mapping[str, np.ndarray]) -> np.ndarray:
    """From 0 (or the lowest score, below it) to the highest score."""
    scores = np.concatenate([matrix.ravel() for matrix in finals.values()])
    low, high = min(0.0, float(scores.min())), float(scores.max())
    return np.linspace(low, high if high > low else low + 1.0, PROFILE_THRESHOLDS)


def performance_profiles(
    finals: Mapping[str, np.ndarray], thresholds: np.ndarray, reps: int = BOOTSTRAP_REPS
) -> Estimates:
    """rliable's score distributions (fraction of runs above each threshold) with CIs."""
    from rliable import library

    with seeded_bootstrap():
        return library.create_performance_profile(dict(finals), thresholds, reps=reps)


def improvement(
    finals: Mapping[str, np.ndarray], better: str, than: str, reps: int = BOOTSTRAP_REPS
) -> Estimates:
    """P(better > than), averaged over tasks, with its CI; keyed "better;than"."""
    from rliable import library, metrics

    pair = {f"{better}{PAIR_SEPARATOR}{than}": (finals[better], finals[than])}
    with seeded_bootstrap():
        return library.get_interval_estimates(pair, metrics.probability_of_improvement, reps=reps)


def iqm_over_steps(array: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(array[..., i]) for i in range(array.shape[-1])])


def sample_efficiency(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], reps: int = BOOTSTRAP_REPS
) -> Estimates:
    """The IQM over runs and tasks at each evaluation step, with its CI, per config."""
    from rliable import library

    with seeded_bootstrap():
        return library.get_interval_estimates(
            {config: array for config, (_, array) in curves.items()}, iqm_over_steps, reps=reps
        )


def check_compare(scores: ScoreSet, compare: tuple[str, str] | None) -> None:
    if compare is None:
        return
    known = ", ".join(scores.finals)
    for name in compare:
        if name not in scores.finals:
            raise UserError(f"--compare: no config {name!r} in these results; they hold {known}")
    if compare[0] == compare[1]:
        raise UserError("--compare: give two different configs")


@dataclass(frozen=True)
class Figures:
    """Every number the figures show, computed before anything is written."""

    scores: ScoreSet
    estimates: Estimates
    thresholds: np.ndarray
    profiles: Estimates
    improvement: Estimates | None
    curves: Estimates | None


def compute(
    scores: ScoreSet, compare: tuple[str, str] | None, reps: int = BOOTSTRAP_REPS
) -> Figures:
    check_compare(scores, compare)
    thresholds = profile_thresholds(scores.finals)
    return Figures(
        scores,
        interval_estimates(scores.finals, scores.normalized, reps),
        thresholds,
        performance_profiles(scores.finals, thresholds, reps),
        improvement(scores.finals, *compare, reps) if compare else None,
        sample_efficiency(scores.curves, reps) if scores.curves else None,
    )


def draw(figures: Figures, output_dir: Path) -> list[Path]:
    """Write each figure as a PNG in `output_dir`; the paths written."""
    from rliable import plot_utils

    scores = figures.scores
    configs = list(scores.finals)
    palette = plt.get_cmap("tab10")
    colors = {config: palette(i % 10) for i, config in enumerate(configs)}
    label = scores.score_label
    drawn: list[tuple[str, Figure]] = []

    points, intervals = figures.estimates
    height = max(0.6 * len(configs), 2.0)  # inches: room for the axis label below
    figure, _ = plot_utils.plot_interval_estimates(
        points, intervals, metric_names(scores.normalized), algorithms=configs, colors=colors,
        xlabel=label, row_height=height / len(configs), xlabel_y_coordinate=-0.6 / height,
    )  # fmt: skip
    drawn.append(("aggregates.png", figure))

    figure, axis = plt.subplots(figsize=(7, 5))
    profiles, profile_cis = figures.profiles
    plot_utils.plot_performance_profiles(
        profiles, figures.thresholds, performance_profile_cis=profile_cis, colors=colors,
        ax=axis, xlabel=f"{label} (τ)", ylabel="fraction of runs with score > τ",
        labelsize="large", ticklabelsize="large",
    )  # fmt: skip
    handles = [Line2D([0], [0], color=colors[config], linewidth=2) for config in configs]
    axis.legend(handles, configs, loc="upper right")
    drawn.append(("performance_profiles.png", figure))

    if figures.improvement is not None:
        probabilities, probability_cis = figures.improvement
        pair = next(iter(probabilities))
        figure, axis = plt.subplots(figsize=(5, 1.8))
        plot_utils.plot_probability_of_improvement(
            probabilities, probability_cis, pair_separator=PAIR_SEPARATOR, ax=axis,
            left_ylabel="X", right_ylabel="Y", xlabel="P(X > Y)",
        )  # fmt: skip
        name = re.sub(r"[^\w.-]+", "-", pair.replace(PAIR_SEPARATOR, "_over_"))
        drawn.append((f"improvement_{name}.png", figure))

    if figures.curves is not None:
        curve_points, curve_cis = figures.curves
        figure, axis = plt.subplots(figsize=(7, 5))
        for config, (steps, _) in scores.curves.items():  # each config at its own steps
            plot_utils.plot_sample_efficiency_curve(
                steps, curve_points, curve_cis, algorithms=[config], colors=colors, ax=axis,
                xlabel="agent steps", ylabel=f"IQM of the {label}", labelsize="large",
                ticklabelsize="large",
            )  # fmt: skip
        axis.legend(loc="best")
        drawn.append(("sample_efficiency.png", figure))

    written = []
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, figure in drawn:
            figure.savefig(output_dir / name, dpi=_DPI, bbox_inches="tight")
            written.append(output_dir / name)
    except OSError as error:
        raise UserError(f"cannot write the figures in {output_dir}: {error.strerror}") from None
    finally:
        for _, figure in drawn:
            plt.close(figure)
    return written
