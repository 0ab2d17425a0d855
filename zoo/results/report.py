"""`zoo report`: the trained runs in a markdown table beside the published Atari scores.

The references (random, human, DQN 2013, DQN Nature, the SB3 benchmark at 10M steps) are
read from `zoo/reference_scores.md`, shipped with the package. Scores are full games, all
lives, unclipped; human-normalized score (HNS) = 100 * (score - random) / (human - random).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from zoo.core.errors import UserError
from zoo.core.textfiles import read_text_file
from zoo.envs.stack import game_of
from zoo.results.aggregates import human_normalized_fraction
from zoo.runs import rl_zoo3_runs
from zoo.runs.evaluation import EvaluationLog
from zoo.runs.folders import Run

REFERENCE_COLUMNS = (
    "DQN 2013 (paper table)",
    "DQN Nature 2015",
    "SB3 benchmark DQN @10M steps",
    "SB3 benchmark A2C @10M",
    "SB3 benchmark QR-DQN @10M",
    "SB3 benchmark PPO @10M",
)
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class RunScore:
    run: str
    algo: str
    game: str
    steps: int
    mean: float | None
    std: float | None
    games: int
    source: str  # where the score comes from


def human_normalized(score: float, random: float, human: float) -> float:
    """Percent of the way from random play (0) to the human score (100)."""
    return 100.0 * human_normalized_fraction(score, random, human)


def reference_table(path: Path | None = None) -> dict[str, dict[str, float | None]]:
    """Game -> column -> score, from the markdown table of published scores."""
    if path is None:
        text = resources.files("zoo").joinpath("reference_scores.md").read_text(encoding="utf-8")
    else:
        text = read_text_file(path, "markdown table of reference scores")
    header: list[str] | None = None
    table: dict[str, dict[str, float | None]] = {}
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        row = {name: _number(cell) for name, cell in zip(header[1:], cells[1:], strict=False)}
        _check_normalizable(cells[0], row, path)
        table[cells[0]] = row
    if not table:
        raise UserError(f"{path}: no table of reference scores found")
    return table


def _check_normalizable(game: str, row: Mapping[str, float | None], path: Path | None) -> None:
    """A game's human-normalized score divides by human - random: they must differ."""
    random, human = row.get("Random"), row.get("Human")
    if random is not None and random == human:
        raise UserError(
            f"{path or 'reference_scores.md'}: {game}'s Human score equals its Random score "
            f"({random:g}), so no human-normalized score exists; correct or remove that row"
        )


def _number(cell: str) -> float | None:
    match = _NUMBER.match(cell.replace(",", ""))
    return float(match.group(1)) if match else None


def run_scores(
    log_dir: Path,
    evaluate: Callable[[Path], tuple[list[float], str]] | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> list[RunScore]:
    """One row per run folder under `log_dir`: its last evaluation, or `evaluate`'s games.
    A damaged run gets no row, only a `note` saying why: the others are still reported."""
    from zoo.runs.folders import run_folders

    rows = []
    for run in run_folders(log_dir):
        name = str(run.path.relative_to(log_dir))
        try:
            rows.append(_run_score(run, name, evaluate))
        except UserError as error:
            note(f"{name} left out of the report: {error}")
    return rows


def _run_score(
    run: Run, name: str, evaluate: Callable[[Path], tuple[list[float], str]] | None
) -> RunScore:
    path = run.path
    info = run.read_info()
    algo, env = info.get("algo"), info.get("env")
    if not isinstance(algo, str) or not isinstance(env, str):
        raise UserError(f"{path / 'run.yml'} names no algo and env; the run folder is damaged")
    try:
        steps = int(info.get("timesteps") or 0)
    except (TypeError, ValueError):
        raise UserError(f"{path / 'run.yml'}: timesteps is not a number") from None
    scores, source = evaluate(path) if evaluate is not None else _last_evaluation(run)
    values = np.asarray(scores, dtype=np.float64)
    return RunScore(
        run=name,
        algo=algo,
        game=game_of(env),
        steps=steps,
        mean=float(values.mean()) if len(values) else None,
        std=float(values.std()) if len(values) else None,
        games=len(values),
        source=source,
    )


def shipped_agent_scores() -> list[RunScore]:
    """One row per agent shipped with zoo, scored by its model card's final evaluation."""
    from zoo.results.pretrained import read_card, shipped_agents
    from zoo.runs.folders import Run

    rows = []
    for name, folder in shipped_agents().items():
        card = read_card(Run(folder))
        evaluation = card.get("evaluation") or {}
        actions = "sampled" if "sampled" in evaluation else "greedy"
        scores = np.asarray((evaluation.get(actions) or {}).get("scores") or [], dtype=np.float64)
        seeds = evaluation.get("seeds") or []
        seed_text = f"seeds {seeds[0]}-{seeds[-1]}, " if seeds else ""
        rows.append(
            RunScore(
                run=f"shipped: {name}",
                algo=str(card.get("algo", "?")),
                game=game_of(str(card.get("env", "?"))),
                steps=int(card.get("steps") or 0),
                mean=float(scores.mean()) if len(scores) else None,
                std=float(scores.std()) if len(scores) else None,
                games=len(scores),
                source=f"shipped agent, {seed_text}{actions} actions",
            )
        )
    return rows


def over_seeds(rows: list[RunScore]) -> str:
    """Markdown lines: for each algo and game with several scored runs, the mean, median and
    IQM of the run means with 95% bootstrap CIs (rliable); empty when no group has two."""
    from zoo.results.aggregates import AGGREGATES, interval_estimates

    groups: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row.mean is not None and not row.run.startswith("shipped: "):
            groups.setdefault((row.algo, row.game), []).append(row.mean)
    lines = []
    for (algo, game), means in groups.items():
        if len(means) < 2:
            continue
        estimates = interval_estimates(means)
        cells = [
            f"{p:.1f} [{low:.1f}, {high:.1f}]"
            for p, low, high in (estimates[n] for n in AGGREGATES)
        ]
        lines.append(f"| {algo} | {game} | {len(means)} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = [
        "",
        "Over runs (each run's score above): point estimate [95% bootstrap CI], rliable.",
        "",
        "| algo | game | runs | mean | median | IQM |",
        "|---|---|---|---|---|---|",
    ]
    return "\n".join(head + lines) + "\n"


def _last_evaluation(run: Run) -> tuple[list[float], str]:
    if run.layout == "rl_zoo3":
        evaluations = rl_zoo3_runs.evaluations(run.evaluations_file)
        if not evaluations:
            return [], "no evaluation yet"
        step, scores = evaluations[-1]
        return scores, f"evaluation at step {step:,}"
    rows = EvaluationLog(run.evaluations_file).checked_rows()
    if not rows:
        return [], "no evaluation yet"
    last = rows[-1]
    return [float(s) for s in last["scores"].split()], f"evaluation at step {int(last['step']):,}"


def markdown(rows: list[RunScore], references: Mapping[str, Mapping[str, float | None]]) -> str:
    head = ["run", "algo", "game", "steps", "score (mean ± std)", "HNS %", "random", "human"]
    head += list(REFERENCE_COLUMNS)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        reference = references.get(row.game, {})
        random, human = reference.get("Random"), reference.get("Human")
        if row.mean is None:
            score, hns = f"({row.source})", ""
        else:
            score = f"{row.mean:.1f} ± {row.std:.1f} ({row.games} games, {row.source})"
            hns = (
                f"{human_normalized(row.mean, random, human):.1f}"
                if random is not None and human is not None
                else "n/a"
            )
        cells = [row.run, row.algo, row.game, f"{row.steps:,}", score, hns]
        cells += [_cell(reference.get(name)) for name in ("Random", "Human", *REFERENCE_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
