"""`zoo benchmark`: cells as run folders, resume after a kill, skip when finished, results."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from rliable import library, metrics

from zoo.core.errors import UserError
from zoo.results.aggregates import BOOTSTRAP_REPS, BOOTSTRAP_SEED
from zoo.results.benchmark import Grid, claim_grid_dir

Zoo = Callable[..., subprocess.CompletedProcess[str]]

GRID = ["benchmark", "--algos", "a2c", "dqn", "--envs", "CartPole-v1", "--seeds", "0", "1",
        "-n", "2000", "--set", "eval_freq=1000", "--set", "eval_episodes=2",
        "--set", "save_freq=500", "--eval-games", "4", "--name", "small"]  # fmt: skip
CELLS = [f"{algo}_CartPole-v1_seed{seed}" for algo in ("a2c", "dqn") for seed in (0, 1)]


def _kill_when_checkpointed(cwd: Path, checkpoint: Path) -> None:
    """Start the grid and kill -9 it once `checkpoint` is complete (its manifest written)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "zoo", *GRID],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (checkpoint / "manifest.json").is_file():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _final_scores(cell_dir: Path, actions: str) -> list[float]:
    evaluation = yaml.safe_load((cell_dir / "benchmark.yml").read_text())["final_evaluation"]
    return [float(score) for score in evaluation["final"][actions]["scores"]]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:random_state is deprecated:FutureWarning")
def test_grid_resumes_a_killed_cell_skips_finished_ones_and_reports(
    zoo: Zoo, tmp_path: Path
) -> None:
    grid_dir = tmp_path / "logs" / "benchmark" / "small"
    _kill_when_checkpointed(tmp_path, grid_dir / CELLS[0] / "checkpoints" / f"step_{1000:012d}")
    first_run = yaml.safe_load((grid_dir / CELLS[0] / "run.yml").read_text())
    assert first_run["status"] == "running" and not (grid_dir / CELLS[1]).exists()

    result = zoo(*GRID)
    assert result.returncode == 0, result.stderr
    resumed_line = next(line for line in result.stdout.splitlines() if "Resuming" in line)
    assert resumed_line.startswith(f"[{CELLS[0]}] Resuming ")
    assert resumed_line.endswith(f"{CELLS[0]} at step 1,000 of 2,000")
    for cell in CELLS[1:]:
        assert f"[{cell}] training" in result.stdout
    with open(grid_dir / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["cell"] for row in rows] == CELLS
    assert all(row["status"] == "finished" and row["steps"] == "2000" for row in rows)
    assert all(row["eval_games"] == "4" and row["eval_seeds"] == "0 1 2 3" for row in rows)
    assert [row["shown_actions"] for row in rows] == ["sampled"] * 2 + ["greedy"] * 2
    assert all(row["final_greedy_mean"] and row["best_greedy_mean"] for row in rows)
    assert all(row["final_sampled_mean"] for row in rows[:2])
    assert not any(row["final_sampled_mean"] for row in rows[2:])  # DQN has no sampling
    assert all(float(row["steps_per_second"]) > 0 and row["cores"] for row in rows)
    resumed = yaml.safe_load((grid_dir / CELLS[0] / "run.yml").read_text())
    assert [entry["from_step"] for entry in resumed["resumes"]] == [1000]

    again = zoo(*GRID)  # everything finished: nothing trains, the same results
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already trained (2,000 steps)") == 4
    assert "training" not in again.stdout and "Resuming" not in again.stdout
    with open(grid_dir / "results.csv", newline="") as file:
        assert list(csv.DictReader(file)) == rows

    # The aggregates over seeds are rliable's for the same scores.
    with open(grid_dir / "aggregates.csv", newline="") as file:
        aggregates = {row["algo"]: row for row in csv.DictReader(file)}
    for algo in ("a2c", "dqn"):
        actions = "sampled" if algo == "a2c" else "greedy"
        scores = np.array(
            [[np.mean(_final_scores(grid_dir / row["cell"], actions))] for row in rows
             if row["algo"] == algo]
        )  # fmt: skip
        np.random.seed(BOOTSTRAP_SEED)  # rliable resamples with numpy's global generator
        points, intervals = library.get_interval_estimates(
            {algo: scores},
            lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)]),
            reps=BOOTSTRAP_REPS,
        )
        row = aggregates[algo]
        assert row["seeds"] == "2"
        assert float(row["iqm"]) == pytest.approx(points[algo][0], abs=0.006)
        assert float(row["iqm_ci_low"]) == pytest.approx(intervals[algo][0][0], abs=0.006)
        assert float(row["iqm_ci_high"]) == pytest.approx(intervals[algo][1][0], abs=0.006)
        assert float(row["mean"]) == pytest.approx(points[algo][1], abs=0.006)
    assert "| a2c | CartPole-v1 | 2 |" in (grid_dir / "results.md").read_text()


@pytest.mark.slow
def test_workers_train_cells_side_by_side(zoo: Zoo, tmp_path: Path) -> None:
    result = zoo("benchmark", "--algos", "dqn", "--envs", "CartPole-v1", "--seeds", "3", "4",
                 "-n", "600", "--set", "eval_freq=300", "--set", "eval_episodes=1",
                 "--eval-games", "2", "--workers", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    grid_dir = tmp_path / "logs" / "benchmark" / "dqn_CartPole-v1"
    for seed in (3, 4):
        info = yaml.safe_load((grid_dir / f"dqn_CartPole-v1_seed{seed}" / "run.yml").read_text())
        assert info["status"] == "finished" and info["timesteps"] == 600 and info["seed"] == seed
    for seed in (3, 4):
        cell_file = grid_dir / f"dqn_CartPole-v1_seed{seed}" / "benchmark.yml"
        evaluation = yaml.safe_load(cell_file.read_text())["final_evaluation"]
        assert evaluation["games"] == 2 and len(evaluation["final"]["greedy"]["scores"]) == 2


# Two DQN cells on CartPole side by side, long enough to be killed mid-run.
PAIR = ["benchmark", "--algos", "dqn", "--envs", "CartPole-v1", "--seeds", "5", "6",
        "--set", "eval_freq=0", "--set", "save_freq=1000", "--eval-games", "1",
        "--workers", "2", "--name", "pair"]  # fmt: skip


def _cell_processes(parent: int) -> list[int]:
    """The pids of the cell processes `zoo benchmark` (pid `parent`) spawned."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(fields[1]) == parent and b"spawn_main" in cmdline:
                found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _start_pair(cwd: Path, steps: int, ready: Callable[[Path], bool]) -> subprocess.Popen[bytes]:
    """Start PAIR; return once both cells' folders pass `ready`."""
    with open(cwd / "out.txt", "wb") as out, open(cwd / "err.txt", "wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "zoo", *PAIR, "-n", str(steps)],
                                   cwd=cwd, stdout=out, stderr=err)  # fmt: skip
    grid_dir = cwd / "logs" / "benchmark" / "pair"
    deadline = time.monotonic() + 180
    while not all(ready(grid_dir / f"dqn_CartPole-v1_seed{seed}") for seed in (5, 6)):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    return process


def _train_seconds(cell: Path) -> float | None:
    with contextlib.suppress(OSError, TypeError, KeyError):
        return float(yaml.safe_load((cell / "benchmark.yml").read_text())["train_seconds"])
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")
def test_a_killed_cell_is_named_the_others_go_on_and_its_time_counts(
    zoo: Zoo, tmp_path: Path
) -> None:
    process = _start_pair(tmp_path, 8000, lambda cell: _train_seconds(cell) is not None)
    victim = _cell_processes(process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    assert process.wait(timeout=240) == 1
    (line,) = (tmp_path / "err.txt").read_text().splitlines()
    assert "died (killed by SIGKILL); the other cells go on" in line, line
    died = line.split("cell ", 1)[1].split(" ", 1)[0]
    grid_dir = tmp_path / "logs" / "benchmark" / "pair"
    before = _train_seconds(grid_dir / died)
    assert before is not None
    with open(grid_dir / "results.csv", newline="") as file:
        status = {row["cell"]: row["status"] for row in csv.DictReader(file)}
    assert status[died] != "finished" and sorted(status.values()).count("finished") == 1

    again = zoo(*PAIR, "-n", "8000")
    assert again.returncode == 0, again.stderr
    assert f"[{died}] Resuming" in again.stdout
    after = _train_seconds(grid_dir / died)
    assert after is not None and after > before  # both sessions count


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")
def test_cells_stop_with_a_checkpoint_when_the_parent_is_killed(tmp_path: Path) -> None:
    def checkpointed(cell: Path) -> bool:
        return any(cell.glob("checkpoints/step_*/manifest.json"))

    process = _start_pair(tmp_path, 1_000_000, checkpointed)
    cells = _cell_processes(process.pid)
    assert len(cells) == 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 120
    while not all(_gone(pid) for pid in cells):
        assert time.monotonic() < deadline, "the cells outlived the benchmark"
        time.sleep(0.2)
    for seed in (5, 6):
        info = yaml.safe_load(
            (
                tmp_path / "logs" / "benchmark" / "pair" / f"dqn_CartPole-v1_seed{seed}" / "run.yml"
            ).read_text()
        )
        assert info["status"] == "interrupted"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cells", "dqn_CartPole-v1_seed9"], "no cell 'dqn_CartPole-v1_seed9' in this grid"),
        (["--eval-games", "0"], "--eval-games must be at least 1"),
        (["--workers", "0"], "--workers must be between 1 and 64"),
        (["--seeds", "-1"], "--seeds must be >= 0"),
        (["--name", "../x"], "give a plain folder name"),
        (["--set", "learning_rate=-1"], "learning_rate"),
        (["--report", "--name", "never"], "no benchmark never in logs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(in_process: Zoo, extra: list[str], message: str) -> None:
    result = in_process("benchmark", "--algos", "dqn", "--envs", "CartPole-v1", *extra)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not Path("logs").exists()


def test_the_same_grid_in_another_order_or_spelling_is_the_same_grid(tmp_path: Path) -> None:
    def grid_of(algos: tuple[str, ...], envs: tuple[str, ...], seeds: tuple[int, ...]) -> Grid:
        return Grid(name="mine", algos=algos, envs=envs, seeds=seeds)

    grid_dir = tmp_path / "mine"
    claim_grid_dir(grid_of(("dqn", "a2c"), ("CartPole-v1", "Breakout"), (0, 1)), grid_dir)
    claim_grid_dir(grid_of(("a2c", "dqn"), ("breakout", "cartpole-v1"), (1, 0)), grid_dir)
    with pytest.raises(UserError, match="holds another benchmark grid"):
        claim_grid_dir(grid_of(("a2c", "dqn"), ("Pong", "CartPole-v1"), (1, 0)), grid_dir)


def test_a_damaged_grid_file_is_called_damaged(in_process: Zoo, tmp_path: Path) -> None:
    grid_dir = tmp_path / "logs" / "benchmark" / "mine"
    grid_dir.mkdir(parents=True)
    (grid_dir / "grid.yml").write_text("just a line\n")
    result = in_process("benchmark", "--algos", "dqn", "--envs", "CartPole-v1", "--name", "mine")
    assert result.returncode == 2 and "grid.yml is damaged" in result.stderr, result.stderr
    assert (grid_dir / "grid.yml").read_text() == "just a line\n"


def test_a_mixed_grid_names_the_algo_a_setting_does_not_fit(in_process: Zoo) -> None:
    result = in_process("benchmark", "--algos", "a2c", "dqn", "--envs", "CartPole-v1",
                        "--set", "exploration_fraction=0.2")  # fmt: skip
    assert result.returncode == 2 and "a2c on CartPole-v1: " in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_folder_of_another_grid_is_refused_untouched(in_process: Zoo, tmp_path: Path) -> None:
    grid_dir = tmp_path / "logs" / "benchmark" / "mine"
    grid_dir.mkdir(parents=True)
    grid_file = grid_dir / "grid.yml"
    grid_file.write_text("name: mine\ngrid: {algos: [a2c], envs: [Pong], seeds: [0]}\n")
    result = in_process("benchmark", "--algos", "dqn", "--envs", "CartPole-v1", "--name", "mine")
    assert result.returncode == 2
    assert "holds another benchmark grid" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert grid_file.read_text().startswith("name: mine\ngrid: {algos: [a2c]")
    assert sorted(p.name for p in grid_dir.iterdir()) == ["grid.yml"]
