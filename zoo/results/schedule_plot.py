"""`zoo schedule`: draw the epsilon, learning-rate and clip-range curves of one exact
configuration."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import matplotlib.pyplot as plt
import numpy as np

from zoo.config.config import Config
from zoo.core.errors import UserError
from zoo.schema.schedules import Schedule

EPSILON_COLOR = "#d62728"
LEARNING_RATE_COLOR = "#1f77b4"
CLIP_RANGE_COLOR = "#2ca02c"
VALUE_CLIP_RANGE_COLOR = "#9467bd"
_SAMPLES = 2000


def horizon(schedule: Schedule, n_timesteps: int) -> float:
    """The x range to draw: the whole run in steps; for episode schedules, past the decay."""
    if schedule.unit == "steps":
        return float(n_timesteps)
    settled = schedule.settled_at or schedule.random_steps
    return max(settled * 1.5, schedule.random_steps + 1, 10.0)


def sample_points(schedule: Schedule, end: float) -> list[float]:
    points = {0.0, end * 0.1, end * 0.5, end}
    if schedule.random_steps:
        points.add(schedule.random_steps)
    if schedule.settled_at is not None and schedule.settled_at <= end:
        points.add(schedule.settled_at)
    return sorted(points)


def check_output(output: Path) -> None:
    """An image file name matplotlib writes as named (it adds .png to a name without one)."""
    from matplotlib.backend_bases import FigureCanvasBase

    if output.is_dir():
        raise UserError(
            f"-o {output}: is a folder; give an image file name such as {output / 'schedule.png'}"
        )
    if output.suffix.lower().lstrip(".") not in FigureCanvasBase.get_supported_filetypes():
        raise UserError(f"-o {output}: give an image file name ending in .png, .svg or .pdf")


def draw(config: Config, output: Path, width: int, height: int) -> list[str]:
    """Write the image; return the lines of sample values to print."""
    check_output(output)
    panels: list[tuple[str, Schedule, str]] = []
    epsilon = config.exploration_schedule()
    if epsilon is not None:
        panels.append(("epsilon", epsilon, EPSILON_COLOR))
    panels.append(("learning rate", config.learning_rate_schedule(), LEARNING_RATE_COLOR))
    clip_range = config.clip_range_schedule()
    if clip_range is not None:
        panels.append(("clip range", clip_range, CLIP_RANGE_COLOR))
    value_clip_range = config.clip_range_vf_schedule()
    if value_clip_range is not None:
        panels.append(("value clip range", value_clip_range, VALUE_CLIP_RANGE_COLOR))

    figure, axes = plt.subplots(len(panels), 1, figsize=(width / 100, height / 100), dpi=100)
    axes = np.atleast_1d(axes)
    lines = []
    for axis, (name, schedule, color) in zip(axes, panels, strict=True):
        end = horizon(schedule, config.n_timesteps)
        xs = np.linspace(0, end, _SAMPLES)
        axis.plot(xs, [schedule.value(x) for x in xs], color=color, linewidth=2, label=name)
        _mark_phases(axis, schedule, end)
        axis.set_xlabel(
            f"agent {schedule.unit}" if schedule.unit == "steps" else "training episodes"
        )
        axis.set_ylabel(name)
        axis.set_title(f"{name}: {schedule.kind}")
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right")
        samples = ", ".join(
            f"{x:,.0f}: {schedule.value(x):.4g}" for x in sample_points(schedule, end)
        )
        lines.append(f"{name} ({schedule.unit}) {samples}")
    figure.suptitle(f"{config.algo} on {config.env.name}, {config.n_timesteps:,} steps")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return lines


def _mark_phases(axis: plt.Axes, schedule: Schedule, end: float) -> None:
    if schedule.random_steps:
        axis.axvspan(0, min(schedule.random_steps, end), color="0.85", label="random phase")
    settled = schedule.settled_at
    if settled is not None and 0 < settled <= end:
        label = "5 tau" if schedule.kind == "exponential" else "end of decay"
        axis.axvline(settled, color="0.3", linestyle="--", label=label)
