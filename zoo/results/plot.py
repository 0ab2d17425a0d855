"""`zoo plot`: learning curves of one or more runs into a PNG or SVG, headless.

Training scores are the full games (all lives, unclipped) that TensorBoard holds as
`episode/score`, one point per finished game at the step it ended; TensorBoard's own purge
bookkeeping drops what a resumed run replaced. Evaluation scores come from
`evaluations.csv`; loss, epsilon and learning rate from the run's TensorBoard scalars.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from zoo.core.errors import UserError
from zoo.runs import rl_zoo3_runs
from zoo.runs.evaluation import EvaluationLog
from zoo.runs.folders import Run
from zoo.schema.names import PLOT_PANELS

IMAGE_SUFFIXES = (".png", ".svg")
# Bootstrap resamples per evaluation step of a --mean plot (one interval per point).
_IQM_BOOTSTRAP_REPS = 2_000
_GRID_POINTS = 300
_DPI = 100

Series = tuple[np.ndarray, np.ndarray]  # (steps, values)


@dataclass(frozen=True)
class RunCurves:
    label: str
    group: str  # runs of one algo and env: averaged together with --mean
    game_steps: np.ndarray  # the step at which each finished training game ended
    game_scores: np.ndarray
    eval_steps: np.ndarray
    eval_means: np.ndarray
    eval_stds: np.ndarray
    scalars: dict[str, Series] = field(default_factory=dict)
    damage: tuple[str, ...] = ()  # why a file of the run could not be read

    @classmethod
    def of_run(
        cls,
        label: str,
        group: str,
        games: Series,
        evaluations: Sequence[tuple[float, float, float]],
        scalars: dict[str, Series] | None = None,
        damage: Sequence[str] = (),
    ) -> RunCurves:
        """The curves of a run: `games` as (steps, scores), `evaluations` as rows of (step,
        mean, std)."""
        table = np.array(evaluations, dtype=np.float64).reshape(-1, 3)
        return cls(
            label=label,
            group=group,
            game_steps=games[0],
            game_scores=games[1],
            eval_steps=table[:, 0],
            eval_means=table[:, 1],
            eval_stds=table[:, 2],
            scalars=scalars or {},
            damage=tuple(damage),
        )

    @property
    def empty(self) -> bool:
        return len(self.game_steps) == 0 and len(self.eval_steps) == 0

    def why_empty(self) -> str:
        if self.damage:
            return "; ".join(self.damage)
        return "no finished episode and no evaluation yet"


def load_run_curves(run: Run, label: str) -> RunCurves:
    info = run.read_info()
    group = f"{info['algo']} {info['env']}"
    if run.layout == "rl_zoo3":
        return _rl_zoo3_curves(run, label, group)
    damage = []
    try:
        scalars = _tensorboard_scalars(run.path)
    except UserError as error:
        scalars = {}
        damage.append(str(error))
    games = scalars.pop("episode/score", (np.zeros(0), np.zeros(0)))
    try:
        evaluations = _evaluations(run.evaluations_file)
    except UserError as error:
        evaluations = []
        damage.append(str(error))
    return RunCurves.of_run(label, group, games, evaluations, scalars, damage)


def _rl_zoo3_curves(run: Run, label: str, group: str) -> RunCurves:
    """Training games from the run's monitor files, evaluations from evaluations.npz."""
    from zoo.results.enjoy import run_config

    damage = []
    frames_per_step = 1
    try:
        config = run_config(run)
        if config.env.kind == "atari":  # its monitors count frames
            frames_per_step = config.env_settings().frame_skip
    except UserError as error:
        damage.append(str(error))
    try:
        games = rl_zoo3_runs.training_games(run.path, frames_per_step)
    except UserError as error:
        games = (np.zeros(0), np.zeros(0))
        damage.append(str(error))
    try:
        rows = [(step, float(np.mean(s)), float(np.std(s)))
                for step, s in rl_zoo3_runs.evaluations(run.evaluations_file) if s]  # fmt: skip
    except UserError as error:
        rows = []
        damage.append(str(error))
    return RunCurves.of_run(label, group, games, rows, damage=damage)


def _evaluations(path: Path) -> list[tuple[float, float, float]]:
    """Rows of (step, mean, std); a UserError saying what is wrong with a damaged file."""
    return [
        (float(row["step"]), float(row["mean"]), float(row["std"]))
        for row in EvaluationLog(path).checked_rows()
    ]


def _tensorboard_scalars(folder: Path) -> dict[str, Series]:
    if not any(folder.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    # size 0 keeps every point: one per finished game, not a sample of them
    accumulator = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    try:
        accumulator.Reload()
    except Exception as error:  # a damaged event file: say which run, keep going without it
        raise UserError(f"{folder}: cannot read its TensorBoard events ({error})") from None
    # Every event file starts with a version record: none read means damaged files, not a
    # run without games (TensorBoard skips what it cannot read without a word).
    written = any(path.stat().st_size > 0 for path in folder.glob("events.out.tfevents.*"))
    if accumulator.file_version is None and written:
        raise UserError(f"{folder}: its TensorBoard event files hold no readable record")
    series: dict[str, Series] = {}
    for tag in accumulator.Tags()["scalars"]:
        events = accumulator.Scalars(tag)
        steps = np.array([event.step for event in events], dtype=np.float64)
        values = np.array([event.value for event in events], dtype=np.float64)
        order = np.argsort(steps, kind="stable")
        series[tag] = (steps[order], values[order])
    return series


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average; the first points average over what exists so far."""
    if window <= 1 or len(values) == 0:
        return values.astype(np.float64)
    sums = np.cumsum(np.insert(values.astype(np.float64), 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def games_finished_by(curves: RunCurves, steps: np.ndarray) -> np.ndarray:
    """How many training games had ended at each step: the x of the episode axis."""
    return np.searchsorted(curves.game_steps, steps, side="right").astype(np.float64)


@dataclass(frozen=True)
class PlotOptions:
    x_axis: str = "steps"
    window: int = 100
    mean: bool = False
    panels: tuple[str, ...] = ()
    width: int = 1200
    height: int = 800
    title: str | None = None


def draw(
    runs: Sequence[RunCurves], output: Path, options: PlotOptions, say: Callable[[str], None]
) -> None:
    """Write the figure; runs without any finished game or evaluation are left out, said."""
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"-o {output}: give a .png or .svg file name")
    drawable = [run for run in runs if not run.empty]
    for run in runs:
        if run.empty:
            say(f"{run.label}: {run.why_empty()}; left out of the plot")
        elif run.damage:
            say(f"{run.label}: {'; '.join(run.damage)}; the rest of the run is plotted")
    if not drawable:
        if any(run.damage for run in runs):
            reasons = "; ".join(f"{run.label}: {run.why_empty()}" for run in runs)
            raise UserError(f"nothing to plot: {reasons}")
        names = ", ".join(run.label for run in runs)
        raise UserError(
            f"nothing to plot: {names} has no finished episode and no evaluation yet; "
            "train longer (an Atari game lasts thousands of steps) or plot another run"
        )
    rows = 1 + len(options.panels)
    figure, axes_grid = plt.subplots(
        rows,
        1,
        figsize=(options.width / _DPI, options.height / _DPI),
        dpi=_DPI,
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [2.5] + [1.0] * len(options.panels)},
    )
    axes = [row[0] for row in axes_grid]
    groups = _groups(drawable) if options.mean else [[run] for run in drawable]
    for index, members in enumerate(groups):
        color = f"C{index % 10}"
        _draw_scores(axes[0], members, options, color)
        for panel, axis in zip(options.panels, axes[1:], strict=True):
            _draw_panel(axis, panel, members, options, color)
    axes[0].set_ylabel("score (full game)")
    axes[0].legend(loc="best", fontsize="small")
    unit = "agent steps" if options.x_axis == "steps" else "training games"
    axes[-1].set_xlabel(unit)
    axes[0].set_title(options.title or _default_title(drawable, options))
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(output, dpi=_DPI)
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror}") from None
    finally:
        plt.close(figure)


def _default_title(runs: Sequence[RunCurves], options: PlotOptions) -> str:
    groups = sorted({run.group for run in runs})
    smoothing = f", training smoothed over {options.window} games" if options.window > 1 else ""
    return f"{'; '.join(groups)}{smoothing}"


def _groups(runs: Sequence[RunCurves]) -> list[list[RunCurves]]:
    grouped: dict[str, list[RunCurves]] = {}
    for run in runs:
        grouped.setdefault(run.group, []).append(run)
    return list(grouped.values())


def _training_curve(run: RunCurves, options: PlotOptions) -> Series:
    scores = smooth(run.game_scores, options.window)
    if options.x_axis == "episodes":
        return np.arange(1, len(scores) + 1, dtype=np.float64), scores
    return run.game_steps, scores


def _evaluation_curve(run: RunCurves, options: PlotOptions) -> tuple[Series, np.ndarray]:
    x = run.eval_steps if options.x_axis == "steps" else games_finished_by(run, run.eval_steps)
    return (x, run.eval_means), run.eval_stds


def _scalar_curve(run: RunCurves, tag: str, options: PlotOptions) -> Series | None:
    if tag not in run.scalars:
        return None
    steps, values = run.scalars[tag]
    x = steps if options.x_axis == "steps" else games_finished_by(run, steps)
    return x, values


def _draw_scores(axis: Axes, members: list[RunCurves], options: PlotOptions, color: str) -> None:
    if len(members) == 1:
        run = members[0]
        if len(run.game_steps):
            x, y = _training_curve(run, options)
            axis.plot(x, y, color=color, label=f"{run.label} training")
        if len(run.eval_steps):
            (x, y), spread = _evaluation_curve(run, options)
            axis.plot(x, y, color=color, linestyle="--", marker="o", markersize=3,
                      label=f"{run.label} evaluation")  # fmt: skip
            axis.fill_between(x, y - spread, y + spread, color=color, alpha=0.12)
        return
    name = f"{members[0].group} ({len(members)} runs, mean ± std)"
    trained = [_training_curve(run, options) for run in members if len(run.game_steps)]
    _mean_and_spread(axis, trained, color, "-", f"{name} training")
    evaluated = [_evaluation_curve(run, options)[0] for run in members if len(run.eval_steps)]
    _mean_and_spread(axis, evaluated, color, "--", f"{name} evaluation")
    iqm = evaluation_iqm([run for run in members if len(run.eval_steps)])
    if iqm is not None:
        steps, point, low, high = iqm
        x = steps if options.x_axis == "steps" else games_finished_by(members[0], steps)
        axis.plot(x, point, color=color, linestyle=":", marker="s", markersize=3,
                  label=f"{members[0].group} evaluation IQM, 95% CI (rliable)")  # fmt: skip
        axis.fill_between(x, low, high, color=color, alpha=0.1, hatch="//")


def _draw_panel(
    axis: Axes, panel: str, members: list[RunCurves], options: PlotOptions, color: str
) -> None:
    ylabel, tags = PLOT_PANELS[panel]
    axis.set_ylabel(ylabel)
    styles = ("-", ":", "-.")
    labelled = set(axis.get_legend_handles_labels()[1])
    for tag, style in zip(tags, styles[: len(tags)], strict=True):
        curves = [c for c in (_scalar_curve(run, tag, options) for run in members) if c]
        if not curves:
            continue
        # runs are told apart by colour in the score panel; here a legend names the tags
        label = tag if len(tags) > 1 and tag not in labelled else None
        if len(members) == 1:
            axis.plot(*curves[0], color=color, linestyle=style, label=label)
        else:
            _mean_and_spread(axis, curves, color, style, label)
    drawn = [line.get_ydata() for line in axis.get_lines()]
    if panel == "loss" and drawn and all(np.min(np.asarray(y)) > 0 for y in drawn):
        axis.set_yscale("log")  # a TD loss spans orders of magnitude
    if axis.get_legend_handles_labels()[1]:
        axis.legend(loc="best", fontsize="x-small")


def evaluation_iqm(
    runs: Sequence[RunCurves],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, IQM, CI low, CI high) of the runs' evaluation means at every step that all of
    them evaluated; None for fewer than two runs or no shared step."""
    from zoo.results.aggregates import interval_estimates

    if len(runs) < 2:
        return None
    shared = sorted(set.intersection(*(set(run.eval_steps.tolist()) for run in runs)))
    if not shared:
        return None
    rows = []
    for step in shared:
        means = [float(run.eval_means[list(run.eval_steps).index(step)]) for run in runs]
        rows.append(interval_estimates(means, reps=_IQM_BOOTSTRAP_REPS)["iqm"])
    point, low, high = (np.array(column) for column in zip(*rows, strict=True))
    return np.array(shared, dtype=np.float64), point, low, high


def mean_and_spread(curves: Sequence[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, mean, std) across curves, interpolated on the x range every curve covers;
    None when they share no range."""
    start = max(float(x[0]) for x, _ in curves)
    end = min(float(x[-1]) for x, _ in curves)
    if end <= start:
        return None
    grid = np.linspace(start, end, _GRID_POINTS)
    values = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, values.mean(axis=0), values.std(axis=0)


def _mean_and_spread(
    axis: Axes, curves: Sequence[Series], color: str, style: str, label: str | None
) -> None:
    if not curves:
        return
    combined = mean_and_spread(curves)
    if combined is None:  # the runs share no x range: draw each instead
        for x, y in curves:
            axis.plot(x, y, color=color, linestyle=style, alpha=0.6)
        return
    grid, mean, spread = combined
    axis.plot(grid, mean, color=color, linestyle=style, label=label)
    axis.fill_between(grid, mean - spread, mean + spread, color=color, alpha=0.2)
