"""`zoo benchmark --suite atari100k`: the games, the result rows and the table beside the
published agents."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rliable import metrics

from zoo.core.errors import UserError
from zoo.results import atari100k

Zoo = Callable[..., subprocess.CompletedProcess[str]]


def test_the_data_file_has_dopamines_random_and_human_score_of_all_26_games() -> None:
    published = atari100k.published_scores()
    assert len(published.games) == 26
    assert set(published.means["Random"]) == set(published.games)
    assert published.means["Random"]["Breakout"] == 1.7
    assert published.means["Human"]["Pong"] == 14.6
    assert published.normalized("Breakout", 30.5) == pytest.approx(1.0)
    for agent in atari100k.PUBLISHED_AGENTS:
        if agent in published.means:  # each published agent has every game
            assert set(published.means[agent]) == set(published.games), agent


def test_suite_games_are_all_26_or_the_named_ones_in_any_spelling() -> None:
    assert atari100k.suite_games([]) == atari100k.published_scores().games
    assert atari100k.suite_games(["pong", "Breakout", "BoxingNoFrameskip-v4", "Pong"]) == (
        "Pong",
        "Breakout",
        "Boxing",
    )
    with pytest.raises(UserError, match="'SpaceInvaders' is not an Atari-100k game"):
        atari100k.suite_games(["SpaceInvaders"])


def _row(game: str, seed: int, mean: float) -> dict[str, str]:
    return {"agent": "drq_eps", "game": game, "seed": str(seed), "steps": "100000",
            "episodes": "100", "eval_epsilon": "0.001", "mean": str(mean)}  # fmt: skip


def test_the_table_gives_per_game_means_and_rliable_aggregates_beside_the_published() -> None:
    rows = [_row("Breakout", 0, 10.0), _row("Breakout", 1, 20.0), _row("Pong", 0, -10.0)]
    rows += [_row("Pong", 1, -20.0), _row("Boxing", 0, 5.0)]
    text = atari100k.table(rows)
    assert "| Breakout | 2 | **15.0** (10, 20) |" in text
    assert "| Boxing | 1 | **5.0** (5) |" in text
    # Aggregates over runs x games as rliable computes them, 1 run per game (the fewest).
    published = atari100k.published_scores()
    matrix = np.array([[published.normalized(g, s) for g, s in
                        (("Boxing", 5.0), ("Breakout", 10.0), ("Pong", -10.0))]])  # fmt: skip
    iqm = metrics.aggregate_iqm(matrix)
    gap = metrics.aggregate_optimality_gap(matrix)
    assert "over 1 run(s) per game" in text
    zoo_line = next(line for line in text.splitlines() if line.startswith("| zoo |"))
    assert zoo_line.startswith(f"| zoo | {iqm:.3f} [")
    assert f"| {gap:.3f} [" in zoo_line
    assert "100,000 agent steps, then 100 whole games" in text


def test_the_table_names_the_settings_a_run_had_beyond_the_preset() -> None:
    rows = [_row("Pong", 0, -20.0), {**_row("Pong", 1, -12.0), "settings": "vec_env=sb3"}]
    text = atari100k.table(rows)
    assert "- Pong seed 1: `vec_env=sb3`" in text and "Pong seed 0" not in text


def test_a_kept_row_is_never_replaced_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    row = {**_row("Pong", 0, -5.0), **{key: "" for key in atari100k.ROW_FIELDS[7:]}}
    first = atari100k.write_row(row, tmp_path)
    second = atari100k.write_row({**row, "mean": "-7"}, tmp_path)
    assert first.name == "drq_eps_Pong_seed0.csv" and second.name == "drq_eps_Pong_seed0_2.csv"
    assert [r["mean"] for r in atari100k.read_rows(tmp_path)] == ["-5.0", "-7"]
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match=r"notes.csv is not an Atari-100k result row"):
        atari100k.read_rows(tmp_path)


@pytest.mark.slow
def test_the_suite_trains_evaluates_keeps_one_row_per_cell_and_tabulates(
    zoo: Zoo, tmp_path: Path
) -> None:
    args = ["benchmark", "--suite", "atari100k", "--games", "Pong", "--seeds", "3", "-n", "110",
            "--eval-games", "2", "--set", "learning_starts=100", "--set", "buffer_size=300",
            "--rows", "rows", "--quiet"]  # fmt: skip
    first = zoo(*args, timeout=600)
    assert first.returncode == 0, first.stderr
    [row_file] = sorted((tmp_path / "rows").glob("*.csv"))
    assert row_file.name == "drq_eps_Pong_seed3.csv"
    with row_file.open() as file:
        [row] = list(csv.DictReader(file))
    assert row["steps"] == "110" and row["episodes"] == "2" and row["eval_epsilon"] == "0.001"
    assert row["game_seeds"] == "0-1" and -21 <= float(row["mean"]) <= 21
    assert row["settings"] == "learning_starts=100 buffer_size=300"  # the grid's --set
    table = (tmp_path / "rows" / "atari100k.md").read_text()
    assert "| Pong | 1 |" in table
    again = zoo(*args, timeout=600)  # finished: nothing trained, the row not kept twice
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "rows").glob("*.csv"))) == 1
    report = zoo("benchmark", "--suite", "atari100k", "--report", "--rows", "rows",
                 "--name", "elsewhere")  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rows" / "atari100k.md").read_text() == table
