"""The results of a study: trials.csv, PNG plots and the best trial as best.yml."""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from zoo.config.config import Config, build_config
from zoo.config.layers import Layer
from zoo.core.atomic import atomic_write_text, write_atomically
from zoo.core.errors import UserError
from zoo.core.yamlio import dump_yaml
from zoo.tune.trial_runs import SEED_RUNS_ATTR, TRIAL_OBJECTIVE_ATTR

TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yml"


def write_report(study: optuna.Study, out_dir: Path, algo: str, env: str) -> list[str]:
    """Write every result file into `out_dir`; returns one line per file (or why it is missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    lines = [f"{out_dir / TRIALS_FILE}: {len(trials)} trials ({_state_counts(trials)})"]
    atomic_write_text(out_dir / TRIALS_FILE, trials_csv(trials))
    lines += _plots(study, out_dir)
    finished = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not finished:
        lines.append(f"{out_dir / BEST_FILE}: not written, no trial is complete yet")
        return lines
    best = max(finished, key=lambda t: float(t.value or -math.inf))
    config = best_config(study, best, algo, env)
    atomic_write_text(out_dir / BEST_FILE, _best_yaml(best, config))
    lines.append(
        f"{out_dir / BEST_FILE}: trial {best.number}, objective {best.value:g}; train it with "
        f"zoo train --algo {algo} --env {env} --hyperparams-file {out_dir / BEST_FILE}"
    )
    return lines


def _state_counts(trials: list[FrozenTrial]) -> str:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items()) or "none"


def trials_csv(trials: list[FrozenTrial]) -> str:
    params = sorted({name for t in trials for name in t.params})
    head = ["number", "state", "value", "seconds", "timesteps", "evaluations", "reason"]
    head += ["retry_of", "run_dir", *params]
    # --seeds-per-trial: each run's seed and score; a one-seed study's table is unchanged.
    with_seeds = any(SEED_RUNS_ATTR in t.user_attrs for t in trials)
    if with_seeds:
        head.append("seed_scores")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(head)
    for t in trials:
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else ""
        )
        attrs = t.user_attrs
        reason = attrs.get("failure") or attrs.get("pruned_reason") or attrs.get("abandoned") or ""
        evaluations = " ".join(f"{int(s)}:{m:g}" for s, m in attrs.get("evaluations", []))
        retry_of = attrs.get("retry_of", t.system_attrs.get("failed_trial", ""))
        row = [t.number, t.state.name, "" if t.value is None else t.value, seconds]
        row += [attrs.get("timesteps", ""), evaluations, reason, retry_of, attrs.get("run_dir", "")]
        row += [t.params.get(name, "") for name in params]
        if with_seeds:
            row.append(_seed_scores(t, " "))
        writer.writerow(row)
    return buffer.getvalue()


def _seed_scores(trial: FrozenTrial, separator: str) -> str:
    """`seed:score` for each run of the trial ('-' for a run that never evaluated)."""
    runs = trial.user_attrs.get(SEED_RUNS_ATTR) or []
    return separator.join(
        f"{run['seed']}:{'-' if run.get('score') is None else format(run['score'], 'g')}"
        for run in runs
    )


def best_config(study: optuna.Study, best: FrozenTrial, algo: str, env: str) -> Config:
    """The config of a full run with the best trial's values: your config (as the study
    recorded it) with the drawn values, lengths scaled to its n_timesteps."""
    base = dict(study.user_attrs.get("base_config") or {})
    base.pop("seed", None)  # each run draws its own
    values = best.user_attrs.get("full_run_values") or {}
    return build_config(
        algo,
        env,
        extra_layers=[
            Layer(f"study {study.study_name}, your config", base),
            Layer(f"study {study.study_name}, trial {best.number}", values),
        ],
    )


def _best_yaml(best: FrozenTrial, config: Config) -> str:
    data = config.to_dict()
    data.pop("seed", None)
    drawn = ", ".join(f"{k}={v}" for k, v in best.params.items())
    header = (
        f"# Best trial {best.number} of the study: objective {best.value:g} "
        f"({_objective_words(best)}, full games).\n"
        f"# Drawn: {drawn}\n"
        + _seed_header(best)
        + f"# Lengths drawn as fractions of the run are scaled to n_timesteps "
        f"({config.n_timesteps:,}).\n"
    )
    return header + dump_yaml(data)


def _objective_words(best: FrozenTrial) -> str:
    runs = best.user_attrs.get(SEED_RUNS_ATTR)
    if not runs:
        return "mean of its later evaluations"
    return f"{best.user_attrs.get(TRIAL_OBJECTIVE_ATTR) or 'mean'} over its {len(runs)} seed runs"


def _seed_header(best: FrozenTrial) -> str:
    runs = best.user_attrs.get(SEED_RUNS_ATTR)
    if not runs:
        return ""
    how = best.user_attrs.get(TRIAL_OBJECTIVE_ATTR) or "mean"
    return (
        f"# {len(runs)} seeds per trial, objective = {how} of their scores (each the mean of "
        f"its later evaluations); seed:score {_seed_scores(best, ', ')}\n"
    )


def _plots(study: optuna.Study, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    plots: dict[str, Callable[[optuna.Study], Any]] = {
        "history.png": optuna_plots.plot_optimization_history,
        "importances.png": optuna_plots.plot_param_importances,
        "slice.png": optuna_plots.plot_slice,
        "parallel_coordinate.png": optuna_plots.plot_parallel_coordinate,
    }
    complete = [t for t in study.get_trials(False, states=(TrialState.COMPLETE,))]
    n_params = len({name for t in complete for name in t.params})
    lines = []
    for name, plot in plots.items():
        path = out_dir / name
        needed = 2 if name != "history.png" else 1
        if len(complete) < needed:
            lines.append(f"{path}: not drawn, it needs {needed} complete trials")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's notes on few trials per regime
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            lines.append(f"{path}: not drawn ({str(error).splitlines()[0]})")
            continue
        figure = _figure_of(axes)
        figure.set_size_inches(*_size(name, n_params))
        try:
            write_atomically(path, partial(_save_png, figure))
        finally:
            plt.close(figure)
        lines.append(f"{path}")
    return lines


def _size(name: str, n_params: int) -> tuple[float, float]:
    """Inches at 100 dpi: the slice plot gets one readable panel per parameter."""
    if name == "slice.png":
        return max(10.0, 3.2 * n_params), 4.5
    if name == "importances.png":
        return 10.0, max(4.0, 1.0 + 0.5 * n_params)
    if name == "parallel_coordinate.png":
        return max(10.0, 1.8 * n_params), 6.0
    return 10.0, 6.0


def _save_png(figure: Any, path: Path) -> None:
    figure.savefig(path, format="png", dpi=100, bbox_inches="tight")


def _figure_of(axes: Any) -> Any:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.get_figure()


def open_report_study(storage: optuna.storages.BaseStorage, name: str, shown: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UserError(
            f"no study {name!r} in {shown}; run zoo tune with the same --study and --storage first"
        ) from None
