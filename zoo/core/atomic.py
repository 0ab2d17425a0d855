"""Writes that a crash or `kill -9` can never leave half done: temporary name, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from zoo.core.interrupts import signals_after_the_write


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
    """Where `path` is written before the rename; keeps the suffix that SB3's savers expect.

    The name is this writer's own (process id and a random tag), so two processes writing the
    same file at once (tune workers sharing a study folder) never rename each other's file away.
    """
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}")


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Let `write` fill a temporary file next to `path`, flush it to disk, rename it over."""
    tmp = partial_name(path)
    with signals_after_the_write():
        try:
            write(tmp)
            fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text under a temporary name in the same folder, flush to disk, then rename.
    A killed writer leaves only a `.partial` name, which a resume removes."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
