from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zoo.core.threads import prefer_sleeping_openmp_threads

# Before anything imports PyTorch, as `zoo` does for itself: the tests that train in this
# process otherwise spin OpenMP threads, and on a busy 2-core machine a 1,500-step CartPole
# run took 470 s instead of 22 s.
prefer_sleeping_openmp_threads()

from zoo.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# A few hundred real steps with a small replay buffer: enough for games to end and
# gradient steps to run, small enough for CI.
SHORT_DQN = ["--set", "buffer_size=2000", "--set", "learning_starts=200"]


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_child_processes() -> Iterator[None]:
    """A shell starts background jobs with SIGINT ignored, and children inherit that: the
    Ctrl-C tests need zoo processes that can be interrupted however pytest was started."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_zoo(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`zoo ARGS` run by this process in cwd, answered as run_zoo answers: for the checks
    that need neither a console script nor a process of their own, without the start-up of one.
    """
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    except SystemExit as end:  # argparse: --help, and errors in the options themselves
        code = end.code if isinstance(end.code, int) else 1
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def wait_for_the_next_second() -> None:
    """TensorBoard orders a folder's event files by name: the second they were opened, then a
    counter of this process (9 sorts after 10). A resume in this process starts in a later
    second than the run it continues, so its events come after that run's, as in a new process.
    """
    time.sleep(1.01 - time.time() % 1)


@pytest.fixture
def zoo(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def call(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return run_zoo(list(args), tmp_path, timeout)

    return call


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`zoo ARGS` run by this process in tmp_path, without the start-up of a process."""
    monkeypatch.chdir(tmp_path)

    def call(*args: str, timeout: float = 0) -> subprocess.CompletedProcess[str]:
        return run_in_process(list(args), tmp_path)

    return call
