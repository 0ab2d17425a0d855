"""Atomic writes: a Ctrl-C during a write lands once the file is complete; a second quits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch as th

from tests.conftest import REPO
from zoo.core.atomic import partial_name, write_atomically


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler, whatever the shell that started pytest left."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _save_with_ctrl_c(presses: int, tensor_count: int = 50):
    def write(path: Path) -> None:
        tensors = {f"t{i}": th.full((1000,), float(i)) for i in range(tensor_count)}
        for _ in range(presses):
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C mid-write
        th.save(tensors, path)

    return write


def test_ctrl_c_during_a_write_raises_once_the_file_is_complete(
    tmp_path: Path, python_ctrl_c: None
) -> None:
    target = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, _save_with_ctrl_c(presses=1))
    assert th.load(target)["t49"][0] == 49.0  # whole, and under its real name
    assert [path.name for path in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_second_ctrl_c_during_a_write_quits_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    th.save({"old": th.zeros(1)}, target)
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'tests'); "
        "from test_atomic import _save_with_ctrl_c; from zoo.core.atomic import write_atomically; "
        f"write_atomically(Path({str(target)!r}), _save_with_ctrl_c(presses=2)); "
        "print('not reached')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 130, result.stderr
    assert "not reached" not in result.stdout and "Traceback" not in result.stderr
    assert "interrupted again" in result.stderr
    assert list(th.load(target)) == ["old"]  # the earlier file is untouched


def test_two_writers_of_one_file_write_to_different_temporary_files(tmp_path: Path) -> None:
    # Tune workers sharing a study folder write the same report file at the same moment.
    target = tmp_path / "history.png"
    first, second = partial_name(target), partial_name(target)
    assert first != second and first.parent == second.parent == tmp_path
    assert first.name.startswith(".history.png.") and first.suffix == ".png"


def test_a_text_write_that_fails_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.core.atomic import atomic_write_text

    target = tmp_path / "run.yml"
    target.write_text("old\n")

    def read_only(*_: object) -> None:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(PermissionError):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.yml"]
