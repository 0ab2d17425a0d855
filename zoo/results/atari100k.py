"""The Atari-100k benchmark (Kaiser et al. 2019) as a suite of `zoo benchmark`.

The protocol, as Dopamine's `labs/atari_100k` and the rliable paper run it: 100k agent steps
per run (the `drq_eps` preset, or another preset of that regime), then 100 whole games with
the preset's evaluation epsilon, each capped at 27,000 agent steps. Each evaluated cell
becomes one result row (a small CSV file); the table puts the per-game means, their
human-normalized scores and the IQM, median, mean and optimality gap over games (rliable,
stratified bootstrap 95% CIs) beside the published agents of `atari100k_scores.csv`.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.atomic import atomic_write_text
from zoo.core.errors import UserError
from zoo.results.aggregates import BOOTSTRAP_REPS, BOOTSTRAP_SEED, human_normalized_fraction

DEFAULT_PRESET = "drq_eps"
EVAL_EPISODES = 100  # Dopamine: MaxEpisodeEvalRunner.num_eval_episodes
SCORES_FILE = "atari100k_scores.csv"
# The published agents shown beside zoo's, in the table's column order.
PUBLISHED_AGENTS = ("DER", "OTRainbow", "DrQ", "DrQ(eps)", "SPR")
AGGREGATE_METRICS = ("iqm", "median", "mean", "optimality_gap")
ALL_GAMES = "all 26"  # the `game` of a published aggregate row
# --set keys that change how fast a run goes, not what it learns: left out of a row's settings.
THREAD_KEYS = ("torch_threads", "env_threads")
ROW_FIELDS = (
    "agent",
    "game",
    "seed",
    "steps",
    "episodes",
    "eval_epsilon",
    "mean",
    "std",
    "median",
    "min",
    "max",
    "game_seeds",
    "train_hours",
    "steps_per_second",
    "cpu",
    "cores",
    "gpu",
    "torch",
    "stable-baselines3",
    "ale-py",
    "date",
    "settings",  # the grid's --set values beyond the preset (rows kept before it: none noted)
)


@dataclass(frozen=True)
class Published:
    """The data file: per-game means (random and human included) and aggregate rows."""

    means: Mapping[str, Mapping[str, float]]  # agent -> game -> mean
    aggregates: Mapping[str, Mapping[str, tuple[float, str, str, str]]]  # agent -> metric -> ...

    @property
    def games(self) -> tuple[str, ...]:
        return tuple(self.means["Human"])

    def normalized(self, game: str, score: float) -> float:
        """Human-normalized score as a fraction (1 = human), Dopamine's random/human table."""
        return human_normalized_fraction(
            score, self.means["Random"][game], self.means["Human"][game]
        )


def published_scores() -> Published:
    text = resources.files("zoo").joinpath(SCORES_FILE).read_text(encoding="utf-8")
    means: dict[str, dict[str, float]] = {}
    aggregates: dict[str, dict[str, tuple[float, str, str, str]]] = {}
    for row in csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#")):
        value = float(row["value"])
        if row["game"] == ALL_GAMES:
            aggregates.setdefault(row["agent"], {})[row["metric"]] = (
                value,
                row["ci_low"],
                row["ci_high"],
                row["source"],
            )
        else:
            means.setdefault(row["agent"], {})[row["game"]] = value
    return Published(means, aggregates)


def suite_games(wanted: Sequence[str]) -> tuple[str, ...]:
    """The games to run: all 26, or the `--games` subset (each checked, in the given order)."""
    games = published_scores().games
    if not wanted:
        return games
    by_lower = {game.lower(): game for game in games}
    chosen = []
    for name in wanted:
        game = by_lower.get(name.lower().removesuffix("noframeskip-v4"))
        if game is None:
            raise UserError(
                f"--games: {name!r} is not an Atari-100k game; choose from {' '.join(games)}"
            )
        chosen.append(game)
    return tuple(dict.fromkeys(chosen))


def cell_row(agent: str, game: str, cell_info: Mapping[str, Any], run_info: Mapping[str, Any],
             eval_epsilon: float, settings: Sequence[str] = ()) -> dict[str, Any] | None:  # fmt: skip
    """The result row of one evaluated cell (its final model), or None before its evaluation."""
    evaluation = cell_info.get("final_evaluation")
    if not isinstance(evaluation, dict) or "final" not in evaluation:
        return None
    scores = np.asarray(evaluation["final"]["greedy"]["scores"], dtype=np.float64)
    seeds = list(evaluation.get("seeds", []))
    seconds = cell_info.get("train_seconds")
    steps = int(run_info.get("timesteps") or 0)
    machine = dict(cell_info.get("machine") or {})
    return {
        "agent": agent,
        "game": game,
        "seed": int(run_info.get("seed") or 0),
        "steps": steps,
        "episodes": len(scores),
        "eval_epsilon": f"{eval_epsilon:g}",
        "mean": f"{scores.mean():.2f}",
        "std": f"{scores.std():.2f}",
        "median": f"{np.median(scores):g}",
        "min": f"{scores.min():g}",
        "max": f"{scores.max():g}",
        "game_seeds": f"{seeds[0]}-{seeds[-1]}" if seeds else "",
        "train_hours": f"{float(seconds) / 3600:.2f}" if seconds else "",
        "steps_per_second": f"{steps / float(seconds):.1f}" if seconds and steps else "",
        **{key: machine.get(key, "") for key in ROW_FIELDS[14:20]},
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "settings": " ".join(settings),
    }


def grid_rows(grid_dir: Path) -> Iterator[tuple[dict[str, Any], Callable[[Path], bool]]]:
    """(row, keep) of each evaluated cell of a suite's grid; keep(rows_dir) writes the row
    there unless the cell's row is kept there already, and says whether it wrote it."""
    from zoo.core.yamlio import read_yaml_file
    from zoo.envs.stack import game_of
    from zoo.results.benchmark import GRID_FILE, read_cell_info, update_cell_info
    from zoo.results.enjoy import run_config
    from zoo.runs.folders import Run

    grid = read_yaml_file(grid_dir / GRID_FILE, what="benchmark grid file")
    agent = str(grid.get("grid", {}).get("preset") or DEFAULT_PRESET)
    settings = [
        str(text)
        for text in grid.get("grid", {}).get("set") or []
        if str(text).partition("=")[0] not in THREAD_KEYS
    ]
    for run_file in sorted(grid_dir.glob("*/run.yml")):
        run = Run(run_file.parent)
        info = read_cell_info(run.path)
        row = cell_row(
            agent, game_of(str(run.read_info().get("env"))), info, run.read_info(),
            run_config(run).evaluation.epsilon, settings,
        )  # fmt: skip
        if row is None:
            continue

        def keep(rows_dir: Path, row: dict[str, Any] = row, cell_path: Path = run.path) -> bool:
            kept = read_cell_info(cell_path).get("kept_row")
            if kept and Path(kept).parent.resolve() == rows_dir.resolve() and Path(kept).is_file():
                return False
            path = write_row(row, rows_dir)
            update_cell_info(cell_path, kept_row=str(path))
            return True

        yield row, keep


def write_row(row: Mapping[str, Any], rows_dir: Path) -> Path:
    """Keep a row as its own CSV file in `rows_dir`; a row kept before is never replaced."""
    stem = f"{row['agent']}_{row['game']}_seed{row['seed']}"
    try:
        rows_dir.mkdir(parents=True, exist_ok=True)
        path = rows_dir / f"{stem}.csv"
        number = 1
        while path.exists():
            number += 1
            path = rows_dir / f"{stem}_{number}.csv"
    except OSError as error:
        raise UserError(f"cannot keep result rows in {rows_dir}: {error.strerror}") from None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS)
    writer.writeheader()
    writer.writerow(dict(row))
    atomic_write_text(path, buffer.getvalue())
    return path


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def read_rows(rows_dir: Path) -> list[dict[str, str]]:
    """Every result row kept in `rows_dir` (its *.csv files), each checked."""
    games = published_scores().games
    rows = []
    for path in sorted(rows_dir.glob("*.csv")):
        try:
            with path.open(encoding="utf-8", newline="") as file:
                read = list(csv.DictReader(file))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise UserError(f"cannot read result row {path}: {error}") from None
        for row in read:
            if not row.get("agent") or row.get("game") not in games or not _is_number(row["mean"]):
                raise UserError(
                    f"{path} is not an Atari-100k result row: it needs an agent, one of the 26 "
                    "games and a numeric mean"
                )
            rows.append(row)
    return rows


def _aggregates(matrix: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_iqm(matrix),
            metrics.aggregate_median(matrix),
            metrics.aggregate_mean(matrix),
            metrics.aggregate_optimality_gap(matrix),
        ]
    )


def interval_estimates(matrix: np.ndarray) -> list[tuple[float, float, float]]:
    """(point, CI low, CI high) of each of AGGREGATE_METRICS over a runs x games matrix of
    human-normalized scores, rliable's stratified bootstrap (games are the strata)."""
    from rliable import library

    # rliable resamples from numpy's global generator: seed it, then give it back as it was.
    outside_state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        points, intervals = library.get_interval_estimates(
            {"zoo": matrix}, _aggregates, reps=BOOTSTRAP_REPS
        )
    finally:
        np.random.set_state(outside_state)
    return [
        (float(points["zoo"][i]), float(intervals["zoo"][0][i]), float(intervals["zoo"][1][i]))
        for i in range(len(AGGREGATE_METRICS))
    ]


def _cell(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table(rows: Sequence[Mapping[str, str]], published: Published | None = None) -> str:
    """The markdown table of zoo's rows (per agent) beside the published agents."""
    published = published or published_scores()
    if not rows:
        return "No Atari-100k result rows yet.\n"
    lines = []
    for agent in dict.fromkeys(row["agent"] for row in rows):
        lines += _agent_table(agent, [row for row in rows if row["agent"] == agent], published)
    return "\n".join(lines) + "\n"


def _agent_table(agent: str, rows: Sequence[Mapping[str, str]], published: Published) -> list[str]:
    games = [game for game in published.games if any(row["game"] == game for row in rows)]
    runs = {game: [float(row["mean"]) for row in rows if row["game"] == game] for game in games}
    steps = sorted({f"{int(row.get('steps') or 0):,}" for row in rows})
    episodes = sorted({str(row.get("episodes", "")) for row in rows})
    epsilons = sorted({str(row.get("eval_epsilon", "")) for row in rows})
    lines = [
        f"## zoo `{agent}`: {len(rows)} run(s) on {len(games)} game(s)",
        "",
        f"Each run: {'/'.join(steps)} agent steps, then {'/'.join(episodes)} whole games (all lives, "
        f"unclipped, capped at 27,000 agent steps) with evaluation epsilon {'/'.join(epsilons)}; "
        "a run's score is its mean. HNS: human-normalized score, Dopamine's random/human table.",
        "",
        "| game | runs | zoo mean (per run) | zoo HNS % | " + " | ".join(PUBLISHED_AGENTS) + " |",
        "|---|---|---|---|" + "---|" * len(PUBLISHED_AGENTS),
    ]
    for game in games:
        scores = runs[game]
        mean = float(np.mean(scores))
        each = ", ".join(f"{score:g}" for score in scores)
        hns = 100 * published.normalized(game, mean)
        others = [_cell(published.means.get(name, {}).get(game)) for name in PUBLISHED_AGENTS]
        lines.append(
            f"| {game} | {len(scores)} | **{mean:.1f}** ({each}) | {hns:.1f} | "
            + " | ".join(others)
            + " |"
        )
    noted = [row for row in rows if row.get("settings")]
    if noted:
        lines += ["", "Settings beyond the preset (`--set`):", ""]
        lines += [f"- {row['game']} seed {row['seed']}: `{row['settings']}`" for row in noted]
    lines += _aggregate_lines(games, runs, published)
    return lines


def _aggregate_lines(
    games: Sequence[str], runs: Mapping[str, Sequence[float]], published: Published
) -> list[str]:
    k = min(len(scores) for scores in runs.values())
    matrix = np.array(
        [[published.normalized(game, runs[game][i]) for game in games] for i in range(k)]
    )
    estimates = interval_estimates(matrix)
    header = " | ".join(AGGREGATE_METRICS)
    lines = [
        "",
        f"Human-normalized aggregates over these {len(games)} game(s) (1 = human): zoo's with "
        f"95% stratified-bootstrap CIs over {k} run(s) per game (rliable); the published "
        "agents' from their per-game means, points only.",
        "",
        f"| agent | {header} |",
        "|---|" + "---|" * len(AGGREGATE_METRICS),
        "| zoo | " + " | ".join(f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in estimates) + " |",
    ]
    for name in PUBLISHED_AGENTS:
        means = published.means.get(name, {})
        if not all(game in means for game in games):
            continue
        row = np.array([[published.normalized(game, means[game]) for game in games]])
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in _aggregates(row)) + " |")
    full = [name for name in PUBLISHED_AGENTS if name in published.aggregates]
    if full:
        lines += [
            "",
            "Published over all 26 games:",
            "",
            f"| agent | {header} | source |",
            "|---|" + "---|" * len(AGGREGATE_METRICS) + "---|",
        ]
        for name in full:
            values = published.aggregates[name]
            cells = []
            for metric in AGGREGATE_METRICS:
                if metric not in values:
                    cells.append("")
                    continue
                value, low, high, _ = values[metric]
                cells.append(f"{value:.3f}" + (f" [{low}, {high}]" if low and high else ""))
            sources = sorted({source for *_, source in values.values()})
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {'; '.join(sources)} |")
    return lines
