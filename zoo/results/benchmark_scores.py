"""The score matrices that rliable's figures are drawn from: per config (an algo of a benchmark
grid, or an agent of Atari-100k result rows) a runs x tasks matrix of final scores and, where
the runs kept their evaluations, a runs x tasks x steps array of evaluation scores.

Scores are human-normalized (1 = human, 0 = random play) where every game has a human and a
random score (reference_scores.md, else the Atari-100k table); a single env without them
(CartPole) keeps its raw score, since one task needs no common scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.core.errors import UserError

# Fewer runs than this per task give no spread to bootstrap and a profile of single steps.
MIN_RUNS = 2


@dataclass(frozen=True)
class RunRecord:
    """One run's outcome: its final score and its evaluations over steps (step, mean)."""

    config: str
    task: str  # the env as the run names it
    seed: int
    final: float
    curve: tuple[tuple[int, float], ...] = ()


@dataclass
class ScoreSet:
    """What every figure is drawn from, each config's runs on the same tasks."""

    tasks: tuple[str, ...]
    normalized: bool
    finals: dict[str, np.ndarray]  # config -> runs x tasks
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # config -> (steps, runs x tasks x steps); only configs whose runs all share their steps
    notes: list[str] = field(default_factory=list)

    @property
    def score_label(self) -> str:
        return "human-normalized score" if self.normalized else f"score ({self.tasks[0]})"


def grid_records(grid_dir: Path, prefix: str = "") -> list[RunRecord]:
    """Each evaluated cell of a benchmark grid: its final model's score (the actions its
    results table shows) and the mean of each of its evaluations during training."""
    from zoo.results.benchmark import GRID_FILE
    from zoo.results.benchmark_report import collect
    from zoo.runs.evaluation import EVALUATIONS_FILE, EvaluationLog

    if not (grid_dir / GRID_FILE).is_file():
        raise UserError(
            f"--benchmark {grid_dir}: not a benchmark folder (no {GRID_FILE}); give "
            "<log-dir>/benchmark/<name>, as `zoo benchmark` writes it"
        )
    records = []
    for cell in collect(grid_dir):
        final = cell.mean("final")
        if final is None:
            continue  # not evaluated yet
        rows = EvaluationLog(grid_dir / cell.cell / EVALUATIONS_FILE).checked_rows()
        curve = tuple((int(row["step"]), float(row["mean"])) for row in rows)
        records.append(RunRecord(prefix + cell.algo, cell.env, cell.seed, final, curve))
    if not records:
        raise UserError(f"--benchmark {grid_dir}: no cell is evaluated yet; nothing to draw")
    return records


def rows_records(rows_dir: Path) -> list[RunRecord]:
    """Each Atari-100k result row kept in `rows_dir` (final scores only)."""
    from zoo.results.atari100k import read_rows

    if not rows_dir.is_dir():
        raise UserError(f"--rows {rows_dir}: no such folder of Atari-100k result rows")
    rows = read_rows(rows_dir)
    if not rows:
        raise UserError(f"--rows {rows_dir}: no result rows (*.csv) in it")
    return [
        RunRecord(row["agent"], row["game"], int(row.get("seed") or 0), float(row["mean"]))
        for row in rows
    ]


def random_and_human() -> dict[str, tuple[float, float]]:
    """Game -> (random, human) score: reference_scores.md, then the Atari-100k table."""
    from zoo.results.atari100k import published_scores
    from zoo.results.report import reference_table

    published = published_scores()
    table = {
        game: (published.means["Random"][game], published.means["Human"][game])
        for game in published.games
    }
    for game, row in reference_table().items():
        random, human = row.get("Random"), row.get("Human")
        if random is not None and human is not None:
            table[game] = (random, human)
    return table


def score_set(records: Sequence[RunRecord]) -> ScoreSet:
    """The runs as matrices: the tasks every config ran, the same number of runs (the first
    by seed) on each task of a config, human-normalized where the games allow it."""
    from zoo.envs.stack import game_of
    from zoo.results.aggregates import human_normalized_fraction

    configs = list(dict.fromkeys(record.config for record in records))
    envs = list(dict.fromkeys(record.task for record in records))
    references = random_and_human()
    normalized = all(game_of(env) in references for env in envs)
    if not normalized and len(envs) > 1:
        missing = next(env for env in envs if game_of(env) not in references)
        raise UserError(
            f"{missing} has no human and random score, so its scores cannot share a scale with "
            "the other envs'; draw the figures of one env at a time, or of Atari games"
        )
    task_of: Callable[[str], str] = game_of if normalized else (lambda env: env)

    def scale(env: str, score: float) -> float:
        if not normalized:
            return score
        return human_normalized_fraction(score, *references[game_of(env)])

    runs: dict[str, dict[str, list[RunRecord]]] = {config: {} for config in configs}
    for record in sorted(records, key=lambda record: record.seed):
        runs[record.config].setdefault(task_of(record.task), []).append(record)
    all_tasks = list(dict.fromkeys(task_of(env) for env in envs))
    tasks = tuple(task for task in all_tasks if all(task in runs[c] for c in configs))
    notes = [
        f"{task} left out: not every config has an evaluated run of it"
        for task in all_tasks
        if task not in tasks
    ]
    if not tasks:
        raise UserError("no task has evaluated runs of every config; nothing to compare")
    finals, curves = {}, {}
    for config in configs:
        count = min(len(runs[config][task]) for task in tasks)
        if count < MIN_RUNS:
            raise UserError(
                f"{config} has {count} evaluated run(s) of a task; the figures need at least "
                f"{MIN_RUNS} per task (the confidence intervals and profiles come from the "
                "spread over runs): give the benchmark more seeds"
            )
        chosen = [[runs[config][task][i] for task in tasks] for i in range(count)]
        finals[config] = np.array([[scale(record.task, record.final) for record in row]
                                   for row in chosen])  # fmt: skip
        curve = _curve_array(chosen, scale)
        if curve is None:
            if any(record.curve for row in chosen for record in row):
                notes.append(f"{config}: its runs share no evaluation step; no curve drawn")
        else:
            curves[config] = curve
    return ScoreSet(tasks, normalized, finals, curves, notes)


def _curve_array(
    chosen: Sequence[Sequence[RunRecord]], scale: Callable[[str, float], float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, runs x tasks x steps) at the evaluation steps all the runs share, or None."""
    shared: set[int] | None = None
    for row in chosen:
        for record in row:
            own = {step for step, _ in record.curve}
            shared = own if shared is None else shared & own
    if not shared:
        return None
    steps = sorted(shared)
    array = np.array(
        [[[scale(record.task, dict(record.curve)[step]) for step in steps] for record in row]
         for row in chosen]
    )  # fmt: skip
    return np.array(steps), array
