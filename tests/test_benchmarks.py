"""The benchmark script runs in a tiny configuration (numbers printed, never asserted)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "extra", "backends"),
    [
        ("a2c", ["--set", "n_envs=2"], 3),  # stock, sb3, ale
        ("dqn", ["--set", "buffer_size=500", "--backends", "stock", "ale:2"], 2),
        (
            "c51",
            ["--preset", "rainbow", "--set", "buffer_size=500", "--backends", "stock", "ale"],
            2,
        ),
        ("ppo_lstm", ["--set", "batch_size=8", "--backends", "stock", "ale:2"], 2),
        ("trpo", ["--set", "batch_size=8", "--backends", "stock", "ale:2"], 2),
    ],
)
def test_throughput_script_runs(algo: str, extra: list[str], backends: int) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--algo", algo, "--steps", "64",
         "--env-steps", "64", "--warmup", "32", "--set", "network=dqn2013"
         if algo in ("dqn", "c51") else "n_steps=4", "--profile", "3", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {algo} |")]
    assert len(rows) == backends and "1.00x" in rows[0]  # ratios against the first backend
    assert rows[0].startswith(f"| {algo} | stock |")
    assert "machine:" in result.stdout and "tottime" in result.stdout  # the profile


def run_script(name: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int | str | None:
    """`python benchmarks/NAME ARGS`, run in this process: its exit code (0 when it returns)."""
    script = REPO / "benchmarks" / name
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as end:
        return end.code
    return 0


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("gpu", "unknown backend 'gpu': use stock, ale, sb3, dummy, subproc, rl_zoo3"),
        ("ale+fast", "'ale+fast': the only modifier after '+' is compile"),
        ("stock+compile", "'stock+compile': stock runs as it comes, with no ':N' or '+compile'"),
        ("ale:0x", "'ale:0x': the number after ':' is the envs, a positive integer"),
        ("ale:0", "'ale:0': the number after ':' is the envs, a positive integer"),
    ],
)
def test_throughput_script_refuses_a_wrong_backend(
    backend: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_script("throughput.py", ["--backends", backend, "--steps", "0"], monkeypatch)
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"throughput.py: error: {message}"]


@pytest.mark.slow
def test_checkpoint_io_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/checkpoint_io.py", "--buffer-size", "1000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "model only" in result.stdout and "with replay buffer" in result.stdout


@pytest.mark.slow
def test_replay_memory_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/replay_memory.py", "--allocate", "1000", "--fill", "300",
         "--batches", "20", "--train-steps", "16", "--warmup", "32", "--buffer-size", "500",
         "--set", "network=dqn2013"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1,000,000 transitions: frames   7.31 GB" in result.stdout
    assert "n_steps 3: frames" in result.stdout and "storing one transition" in result.stdout
    assert "frames on cpu" in result.stdout.split("DQN training")[0]
    training = result.stdout.split("DQN training")[1]
    assert all(f"  {name} " in training for name in ("frames", "frames on device", "sb3"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine with no GPU")
def test_throughput_script_refuses_cuda_without_a_gpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_script("throughput.py", ["--device", "cuda", "--steps", "0"], monkeypatch)
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "throughput.py: error: --device cuda: no CUDA GPU is visible to PyTorch here; "
        "use --device cpu or auto"
    ]


def write_run(folder: Path, rows: list[tuple[int, int]], resumed_at: int | None = None) -> Path:
    """A run folder's run.yml and progress.csv, SB3's time columns at (step, seconds) rows."""
    folder.mkdir()
    resumes = f"resumes:\n- from_step: {resumed_at}\n" if resumed_at else ""
    (folder / "run.yml").write_text(
        "algo: dqn\nenv: BreakoutNoFrameskip-v4\ndevice: cuda\ntotal_timesteps: 1000000\n" + resumes
    )
    lines = ["train/loss,time/total_timesteps,time/time_elapsed,time/fps"]
    lines += [f"0.5,{step},{seconds},1000" for step, seconds in rows]
    (folder / "progress.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_run_speed_times_the_rows_after_a_step_and_each_resumed_session_on_its_own_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 100,000 random-phase steps in 50 s, then 1,000 steps/s; resumed at step 120,000, whose
    # clock starts again at 0 (its first row, 10,000 steps on, 80 s later: a later clock
    # reading than the first session's last, so only run.yml tells the restart).
    rows = [(50_000, 25), (100_000, 50), (110_000, 60), (120_000, 70), (130_000, 80)]
    run = write_run(tmp_path / "run", rows, resumed_at=120_000)
    code = run_script("run_speed.py", [str(run), "--from-step", "100000"], monkeypatch)
    assert code == 0
    out = capsys.readouterr().out
    assert "logged: 130,000 of 1,000,000 steps" in out
    assert "whole: 130,000 steps in 150 s = 867 steps/s" in out
    assert "up to step 100,000: 100,000 steps in 50 s" in out
    assert "after step 100,000: 30,000 steps in 100 s = 300 steps/s" in out
    # 50 s + 900,000 steps at 300 steps/s = 3,050 s
    assert "projected for 1,000,000 steps: 0.85 h" in out


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda path: path, [], "is not a run folder (no run.yml)"),
        (
            lambda path: write_run(path / "run", [(1000, 1), (2000, 2)]),
            ["--from-step", "2000"],
            "the run logged no rows after step 2,000: lower --from-step or let it train longer",
        ),
    ],
)
def test_run_speed_refuses_what_it_cannot_time_in_one_line(
    make: Callable[[Path], Path],
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_script("run_speed.py", [str(make(tmp_path)), *args], monkeypatch)
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_speed.py: error: ")
    assert lines[0].endswith(message)
