"""The benchmark script runs in a tiny configuration (numbers printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_train_throughput_script_runs() -> None:
    for algo, extra in (("dqn", ["--set", "buffer_size=1000"]), ("a2c", ["--set", "n_envs=2"])):
        result = subprocess.run(
            [
                sys.executable,
                "benchmarks/train_throughput.py",
                "--algo",
                algo,
                "--steps",
                "200",
                "--warmup",
                "100",
                *extra,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "agent steps/s" in result.stdout


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
