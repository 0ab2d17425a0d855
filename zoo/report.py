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

from zoo.errors import UserError
from zoo.evaluation import EVALUATIONS_FILE, EvaluationLog

REFERENCE_COLUMNS = (
    "DQN 2013 (paper table)",
    "DQN Nature 2015",
    "SB3 benchmark DQN @10M steps",
    "SB3 benchmark A2C @10M",
    "SB3 benchmark QR-DQN @10M",
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
    return 100.0 * (score - random) / (human - random)


def reference_table(path: Path | None = None) -> dict[str, dict[str, float | None]]:
    """Game -> column -> score, from the markdown table of published scores."""
    if path is None:
        text = resources.files("zoo").joinpath("reference_scores.md").read_text(encoding="utf-8")
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot read {path}: {error.strerror}") from None
    header: list[str] | None = None
    table: dict[str, dict[str, float | None]] = {}
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        table[cells[0]] = {
            name: _number(cell) for name, cell in zip(header[1:], cells[1:], strict=False)
        }
    if not table:
        raise UserError(f"{path}: no table of reference scores found")
    return table


def _number(cell: str) -> float | None:
    match = _NUMBER.match(cell.replace(",", ""))
    return float(match.group(1)) if match else None


def game_of(env_name: str) -> str:
    """BreakoutNoFrameskip-v4, ALE/Breakout-v5, Breakout-ramNoFrameskip-v4 -> Breakout."""
    name = env_name.split("/")[-1]
    name = name.replace("-ram", "")
    name = re.sub(r"(NoFrameskip)?-v\d+$", "", name)
    return name


def run_scores(
    log_dir: Path, evaluate: Callable[[Path], tuple[list[float], str]] | None = None
) -> list[RunScore]:
    """One row per run folder under `log_dir`: its last evaluation, or `evaluate`'s games."""
    from zoo.runs import Run

    rows = []
    for run_file in sorted(log_dir.glob("*/*/run.yml")):
        run = Run(run_file.parent)
        info = run.read_info()
        algo, env = str(info.get("algo", "?")), str(info.get("env", "?"))
        scores, source = evaluate(run.path) if evaluate is not None else _last_evaluation(run.path)
        values = np.asarray(scores, dtype=np.float64)
        rows.append(
            RunScore(
                run=str(run.path.relative_to(log_dir)),
                algo=algo,
                game=game_of(env),
                steps=int(info.get("timesteps") or 0),
                mean=float(values.mean()) if len(values) else None,
                std=float(values.std()) if len(values) else None,
                games=len(values),
                source=source,
            )
        )
    return rows


def _last_evaluation(run_path: Path) -> tuple[list[float], str]:
    rows = EvaluationLog(run_path / EVALUATIONS_FILE).rows()
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
