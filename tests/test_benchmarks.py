"""The benchmark script runs in a tiny configuration (numbers printed, never asserted)."""

from __future__ import annotations

import runpy
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "extra", "backends"),
    [
        ("a2c", ["--set", "n_envs=2"], 3),  # stock, sb3, ale
        ("dqn", ["--set", "buffer_size=500", "--backends", "stock", "ale:2"], 2),
    ],
)
def test_throughput_script_runs(algo: str, extra: list[str], backends: int) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--algo", algo, "--steps", "64",
         "--env-steps", "64", "--warmup", "32", "--set", "network=dqn2013" if algo == "dqn"
         else "n_steps=4", "--profile", "3", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {algo} |")]
    assert len(rows) == backends and "1.00x" in rows[0]  # ratios against the first backend
    assert rows[0].startswith(f"| {algo} | stock |")
    assert "machine:" in result.stdout and "tottime" in result.stdout  # the profile


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("gpu", "unknown backend 'gpu': use stock, ale, sb3, dummy or subproc"),
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
    # The script run as `python benchmarks/throughput.py` runs it, in this process.
    script = REPO / "benchmarks" / "throughput.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--backends", backend, "--steps", "0"])
    with pytest.raises(SystemExit) as end:
        runpy.run_path(str(script), run_name="__main__")
    assert end.value.code == 2
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
