"""Reading a text file the user named: one line when it is missing, binary or far too big.

Every config, table and journal zoo reads is a few kilobytes; the cap keeps a wrong path
(`/dev/zero`, a video, a disk image) from filling the memory before any check can run.
"""

from __future__ import annotations

from pathlib import Path

from zoo.core.errors import UserError

MAX_TEXT_BYTES = 4 * 1024 * 1024


def read_text_file(path: Path, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of `path` (`what` names it in messages: "hyperparameter file")."""
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; give a {what}") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > limit:
        raise UserError(
            f"{path}: over {limit // (1024 * 1024)} MiB, far more than any {what}; "
            "is it the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; give a {what}") from None
