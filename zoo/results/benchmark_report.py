"""results.csv, aggregates.csv and results.md of a benchmark grid.

Per cell: steps, wall time, steps/s, the final evaluation (whole games, all lives, unclipped)
of the final and the best model, greedy and, where the policy samples, sampled, and the
human-normalized score. Per algo x env over seeds: mean, median and IQM with 95% stratified
bootstrap confidence intervals, computed by rliable (Agarwal et al. 2021).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.atomic import atomic_write_text
from zoo.core.yamlio import read_yaml_file
from zoo.envs.stack import game_of
from zoo.results.aggregates import AGGREGATES, interval_estimates
from zoo.results.benchmark import evaluation_modes, read_cell_info
from zoo.results.report import human_normalized, reference_table

RESULTS_CSV = "results.csv"
AGGREGATES_CSV = "aggregates.csv"
RESULTS_MD = "results.md"


@dataclass(frozen=True)
class CellResult:
    cell: str
    algo: str
    env: str
    seed: int
    status: str
    steps: int
    total_steps: int
    train_seconds: float | None
    evaluation: dict[str, Any]  # the cell's final_evaluation, {} before it is evaluated
    machine: dict[str, Any]
    error: str = ""  # why the cell gave up (a Slurm task's last failure), from benchmark.yml

    @property
    def shown_actions(self) -> str:
        """The actions the table scores: sampled where the policy samples (as the SB3
        benchmark scores its actor-critic agents), else greedy."""
        return evaluation_modes(self.algo)[0]

    def scores(self, model: str, actions: str) -> list[float] | None:
        games = self.evaluation.get(model, {}).get(actions)
        return [float(s) for s in games["scores"]] if isinstance(games, dict) else None

    def mean(self, model: str, actions: str | None = None) -> float | None:
        scores = self.scores(model, actions or self.shown_actions)
        return float(np.mean(scores)) if scores else None


def collect(grid_dir: Path) -> list[CellResult]:
    results = []
    for run_file in sorted(grid_dir.glob("*/run.yml")):
        info = read_yaml_file(run_file, what="run file")
        if not isinstance(info, dict):
            continue
        cell_info = read_cell_info(run_file.parent)
        seconds = cell_info.get("train_seconds")
        evaluation = cell_info.get("final_evaluation")
        error = str(cell_info.get("error") or "")
        results.append(
            CellResult(
                cell=run_file.parent.name,
                algo=str(info.get("algo")),
                env=str(info.get("env")),
                seed=int(info.get("seed") or 0),
                status="failed" if error else str(info.get("status", "?")),
                steps=int(info.get("timesteps") or 0),
                total_steps=int(info.get("total_timesteps") or 0),
                train_seconds=float(seconds) if seconds is not None else None,
                evaluation=evaluation if isinstance(evaluation, dict) else {},
                machine=dict(cell_info.get("machine") or {}),
                error=error,
            )
        )
    return results


def _hns(game: str, score: float | None, references: dict[str, dict[str, float | None]]) -> str:
    reference = references.get(game, {})
    random, human = reference.get("Random"), reference.get("Human")
    if score is None or random is None or human is None:
        return ""
    return f"{human_normalized(score, random, human):.1f}"


def _number(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def cell_rows(results: Sequence[CellResult]) -> list[dict[str, Any]]:
    references = reference_table()
    rows = []
    for result in results:
        speed = (
            result.steps / result.train_seconds if result.train_seconds and result.steps else None
        )
        row: dict[str, Any] = {
            "cell": result.cell,
            "algo": result.algo,
            "env": result.env,
            "seed": result.seed,
            "status": result.status,
            "steps": result.steps,
            "total_steps": result.total_steps,
            "train_hours": _number(
                None if result.train_seconds is None else result.train_seconds / 3600, 2
            ),
            "steps_per_second": _number(speed, 0),
            "eval_games": result.evaluation.get("games", ""),
            "eval_seeds": " ".join(map(str, result.evaluation.get("seeds", []))),
            "shown_actions": result.shown_actions,
            "final_mean": _number(result.mean("final")),
            "best_mean": _number(result.mean("best")),
            "final_hns": _hns(game_of(result.env), result.mean("final"), references),
        }
        for model in ("final", "best"):
            for actions in ("greedy", "sampled"):
                scores = result.scores(model, actions)
                row[f"{model}_{actions}_mean"] = _number(float(np.mean(scores)) if scores else None)
                row[f"{model}_{actions}_std"] = _number(float(np.std(scores)) if scores else None)
        row.update(
            {
                key: result.machine.get(key, "")
                for key in ("cpu", "cores", "gpu", "torch", "stable-baselines3", "ale-py")
            }
        )
        if result.error:  # the column appears only in grids where a cell failed
            row["error"] = result.error
        rows.append(row)
    return rows


def aggregate_rows(results: Sequence[CellResult]) -> list[dict[str, Any]]:
    """Per algo x env: the final model's shown score over the evaluated seeds."""
    groups: dict[tuple[str, str], list[CellResult]] = {}
    for result in results:
        groups.setdefault((result.algo, result.env), []).append(result)
    rows = []
    for (algo, env), members in groups.items():
        scores = [m.mean("final") for m in members]
        evaluated = [s for s in scores if s is not None]
        row: dict[str, Any] = {"algo": algo, "env": env, "seeds": len(evaluated)}
        if evaluated:
            for name, (point, low, high) in interval_estimates(evaluated).items():
                row[name] = f"{point:.2f}"
                row[f"{name}_ci_low"] = f"{low:.2f}"
                row[f"{name}_ci_high"] = f"{high:.2f}"
        rows.append(row)
    return rows


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    fields = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def markdown(
    grid_name: str, cells: Sequence[dict[str, Any]], aggregates: Sequence[dict[str, Any]]
) -> str:
    lines = [f"# Benchmark {grid_name}", ""]
    lines += [
        "Final evaluation of each cell: whole games (all lives, unclipped score), "
        "game i with seed i; `actions` says how the table's score was played "
        "(sampled from the policy, or greedy).",
        "",
        "| cell | steps | hours | steps/s | actions | final model | best model | final greedy | final sampled | HNS % | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in cells:
        machine = (
            f"{row['cpu']} ({row['cores']} cores), GPU {row['gpu']}, torch {row['torch']}"
            if row["cpu"]
            else ""
        )
        games = f" ({row['eval_games']} games)" if row["eval_games"] else ""
        lines.append(
            f"| {row['cell']} | {row['steps']:,} / {row['total_steps']:,} ({row['status']}) | {row['train_hours']} "
            f"| {row['steps_per_second']} | {row['shown_actions']} | {row['final_mean']}{games} | {row['best_mean']} "
            f"| {row['final_greedy_mean']} | {row['final_sampled_mean']} | {row['final_hns']} | {machine} |"
        )
    lines += [
        "",
        "Over seeds (final model, the actions above): point estimate [95% bootstrap CI], rliable.",
        "",
        "| algo | env | seeds | mean | median | IQM |",
        "|---|---|---|---|---|---|",
    ]
    for row in aggregates:
        shown = [
            f"{row[name]} [{row[name + '_ci_low']}, {row[name + '_ci_high']}]"
            if name in row
            else ""
            for name in AGGREGATES
        ]
        lines.append(
            f"| {row['algo']} | {row['env']} | {row['seeds']} | " + " | ".join(shown) + " |"
        )
    return "\n".join(lines) + "\n"


def write_results(grid_dir: Path, grid_name: str) -> list[Path]:
    results = collect(grid_dir)
    cells = cell_rows(results)
    aggregates = aggregate_rows(results)
    written = []
    for name, text in (
        (RESULTS_CSV, _csv_text(cells)),
        (AGGREGATES_CSV, _csv_text(aggregates)),
        (RESULTS_MD, markdown(grid_name, cells, aggregates)),
    ):
        atomic_write_text(grid_dir / name, text)
        written.append(grid_dir / name)
    return written
