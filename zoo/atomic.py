"""Writes that a crash or `kill -9` can never leave half done: temporary name, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from zoo.errors import EXIT_INTERRUPTED
from zoo.interrupts import python_handles_ctrl_c


def fsync_file(path: Path) -> None:
    with open(path, "rb") as written:
        os.fsync(written.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (a power cut after it keeps the new name)."""
    with contextlib.suppress(OSError):  # some filesystems cannot open folders
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def partial_name(path: Path) -> Path:
    """Where `path` is written before the rename; keeps the suffix that SB3's savers expect."""
    return path.with_name(f".{path.name}.partial{path.suffix}")


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Let `write` fill a temporary file next to `path`, flush it to disk, rename it over."""
    tmp = partial_name(path)
    with ctrl_c_after_the_write():
        try:
            write(tmp)
            fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def ctrl_c_after_the_write() -> Iterator[None]:
    """Hold a Ctrl-C that comes while a file is written until the file is complete.

    Raised inside PyTorch's zip writer, KeyboardInterrupt comes out as a RuntimeError
    ("unexpected pos"): a Ctrl-C during a periodic checkpoint ended the run with a traceback
    and without its final checkpoint. A second Ctrl-C still quits at once: the file is only
    under its temporary name, so nothing saved before is touched. Only where Ctrl-C would
    raise KeyboardInterrupt (the main thread, Python's own handler); a handler of zoo's, such
    as the one that quits during the final save, stays in charge.
    """
    if not python_handles_ctrl_c():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if held:
            print("zoo: interrupted again: quitting without this file", file=sys.stderr)
            os._exit(EXIT_INTERRUPTED)
        held.append(signum)
        print("zoo: stopping once the file being written is complete", file=sys.stderr)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to a temporary file in the same folder, flush to disk, then rename."""
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
    ) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
    fsync_dir(path.parent)
