"""`zoo report`: human-normalized scores from known inputs, and the table of real runs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from zoo.envs.stack import game_of
from zoo.results.aggregates import interval_estimates
from zoo.results.report import (
    RunScore,
    human_normalized,
    markdown,
    over_seeds,
    reference_table,
)

Zoo = Callable[..., subprocess.CompletedProcess[str]]


def test_human_normalized_scores_are_exact() -> None:
    table = reference_table()
    breakout, pong = table["Breakout"], table["Pong"]
    assert (breakout["Random"], breakout["Human"]) == (1.7, 30.5)
    assert human_normalized(30.5, 1.7, 30.5) == 100.0
    assert human_normalized(1.7, 1.7, 30.5) == 0.0
    assert human_normalized(16.1, 1.7, 30.5) == pytest.approx(50.0)
    # DQN Nature on Breakout: (401.2 - 1.7) / (30.5 - 1.7) = 1387.15...%
    assert human_normalized(401.2, 1.7, 30.5) == pytest.approx(1387.1527777, rel=1e-9)
    assert human_normalized(0.0, -20.7, 14.6) == pytest.approx(100 * 20.7 / 35.3)
    assert pong["DQN Nature 2015"] == 18.9 and table["MsPacman"]["DQN 2013 (paper table)"] is None


def test_game_names_map_to_the_reference_rows() -> None:
    for env in ("BreakoutNoFrameskip-v4", "ALE/Breakout-v5", "Breakout-ramNoFrameskip-v4"):
        assert game_of(env) == "Breakout"


def test_markdown_row_holds_score_hns_and_references() -> None:
    row = RunScore("dqn/BreakoutNoFrameskip-v4_1", "dqn", "Breakout", 10_000_000,
                   16.1, 2.0, 10, "evaluation at step 10,000,000")  # fmt: skip
    text = markdown([row], reference_table())
    line = text.splitlines()[2]
    assert "| 16.1 ± 2.0 (10 games, evaluation at step 10,000,000) | 50.0 |" in line
    assert line.endswith("| 1.7 | 30.5 | 168 | 401.2 | 358.3 | 279.8 | 393.6 | 398 |")


def test_report_of_real_runs(in_process: Zoo, tmp_path: Path) -> None:
    trained = in_process("train", "--algo", "dqn", "--env", "CartPole-v1", "-n", "1000", "--quiet",
                         "--set", "eval_freq=500", "--set", "eval_episodes=2")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    result = in_process("report", "--episodes", "3", "-o", "report.md")
    assert result.returncode == 0, result.stderr
    line = result.stdout.splitlines()[2]
    assert line.startswith("| dqn/CartPole-v1_1 | dqn | CartPole | 1,000 |")
    assert "(3 games, best model now) | n/a |" in line  # no human score for CartPole
    assert (tmp_path / "report.md").read_text() == result.stdout
    last = in_process("report")
    assert "(2 games, evaluation at step 1,000)" in last.stdout
    missing = in_process("report", "--log-dir", "nowhere")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


# Two bootstraps of the report's own 20,000 resamples (up to 40 s a call on a busy 2-core
# machine), so the slow tier. The two agree exactly: zoo.results.aggregates seeds the bootstrap.
@pytest.mark.slow
def test_runs_of_one_algo_and_game_get_rliable_aggregates() -> None:

    def row(run: str, algo: str, mean: float | None) -> RunScore:
        return RunScore(run, algo, "Breakout", 1000, mean, 0.0, 10, "evaluation")

    rows = [row("a/1", "a2c", 10.0), row("a/2", "a2c", 30.0), row("a/3", "a2c", 14.0),
            row("d/1", "dqn", 5.0), row("d/2", "dqn", None)]  # fmt: skip
    text = over_seeds(rows)
    estimates = interval_estimates([10.0, 30.0, 14.0])
    cells = [f"{p:.1f} [{lo:.1f}, {hi:.1f}]" for p, lo, hi in estimates.values()]
    assert f"| a2c | Breakout | 3 | {cells[0]} | {cells[1]} | {cells[2]} |" in text
    assert "| dqn |" not in text  # one scored run: nothing to aggregate
    assert over_seeds(rows[3:]) == ""


def _fake_run(log_dir: Path, name: str, evaluations: str | bytes | None) -> Path:
    """A run folder as report reads it: run.yml, and evaluations.csv as given."""
    run = log_dir / "dqn" / name
    run.mkdir(parents=True)
    env = name.rsplit("_", 1)[0]
    (run / "run.yml").write_text(f"algo: dqn\nenv: {env}\nstatus: finished\ntimesteps: 1000\n")
    (run / "config.yml").write_text("n_timesteps: 1000\n")
    if isinstance(evaluations, str):
        (run / "evaluations.csv").write_text(evaluations)
    elif evaluations is not None:
        (run / "evaluations.csv").write_bytes(evaluations)
    return run


GOOD_EVALUATIONS = "step,mean,std,scores\n500,2,0,2 2\n1000,16.1,1,15.1 17.1\n"


def test_a_damaged_run_is_left_out_with_a_note_and_the_others_reported(
    in_process: Zoo, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    _fake_run(logs, "BreakoutNoFrameskip-v4_1", GOOD_EVALUATIONS)
    _fake_run(logs, "BreakoutNoFrameskip-v4_2", "step,mean\n1000,5\n")  # no scores column
    _fake_run(logs, "BreakoutNoFrameskip-v4_3", "step,mean,std,scores\n1000,x,0,1\n")
    _fake_run(logs, "BreakoutNoFrameskip-v4_4", b"\x00\xff\xfe binary")
    broken = _fake_run(logs, "BreakoutNoFrameskip-v4_5", GOOD_EVALUATIONS)
    (broken / "run.yml").write_bytes(b"\xff\xfe: [")
    _fake_run(logs, "PongNoFrameskip-v4_1", GOOD_EVALUATIONS)  # one run per game: no rliable
    result = in_process("report")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| dqn/")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| dqn/BreakoutNoFrameskip-v4_1",
        "| dqn/PongNoFrameskip-v4_1",
    ]
    assert "16.1 ± 1.0 (2 games, evaluation at step 1,000)" in rows[0]
    notes = result.stderr.strip().splitlines()
    assert len(notes) == 4 and all(note.startswith("note: dqn/Breakout") for note in notes)
    assert "v4_2 left out of the report: " in notes[0] and "no 'std', 'scores' columns" in notes[0]
    assert "line 2 holds no readable step, mean, std and scores" in notes[1]
    assert "evaluations.csv: not a UTF-8 text file" in notes[2]
    assert "v4_5 left out of the report: " in notes[3] and "run.yml: not a UTF-8" in notes[3]


def test_references_that_are_not_a_table_are_one_line(in_process: Zoo, tmp_path: Path) -> None:
    _fake_run(tmp_path / "logs", "BreakoutNoFrameskip-v4_1", GOOD_EVALUATIONS)
    (tmp_path / "scores.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "folder").mkdir()
    cases = [
        ("scores.bin", "scores.bin: not a UTF-8 text file"),
        ("/dev/zero", "/dev/zero: over 4 MiB"),
        ("folder", "folder is a folder; give a markdown table of reference scores"),
        ("missing.md", "markdown table of reference scores not found: missing.md"),
        ("equal.md", "equal.md: Breakout's Human score equals its Random score (1.7)"),
    ]
    (tmp_path / "equal.md").write_text(
        "| game | Random | Human |\n|---|---|---|\n| Breakout | 1.7 | 1.7 |\n"
    )
    for path, message in cases:
        result = in_process("report", "--references", path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
