"""Crash-safe checkpoints: `checkpoints/step_<N>/` in a run folder.

A checkpoint holds `model.zip` (weights, optimizer, step counters, schedules),
`training_state.pkl` (RNG states and the callbacks' state) and, when asked,
`replay_buffer.pkl`. Each file is written under a temporary name, flushed and renamed;
`manifest.json` (sizes and SHA-256 of every file) is written last, so a checkpoint without
one, or whose files disagree with it, is incomplete and never used.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from zoo.core.atomic import atomic_write_text, fsync_dir, write_atomically
from zoo.core.errors import UserError

MANIFEST = "manifest.json"
MODEL = "model.zip"
TRAINING_STATE = "training_state.pkl"
REPLAY_BUFFER = "replay_buffer.pkl"
FORMAT_VERSION = 1
_FOLDER = re.compile(r"^step_(\d+)$")


class CheckpointError(Exception):
    """A checkpoint that is incomplete or corrupt; the message says which file and why."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    files: Mapping[str, Mapping[str, Any]]

    @property
    def model_file(self) -> Path:
        return self.path / MODEL

    @property
    def state_file(self) -> Path:
        return self.path / TRAINING_STATE

    @property
    def replay_buffer_file(self) -> Path | None:
        return self.path / REPLAY_BUFFER if REPLAY_BUFFER in self.files else None

    def training_state(self) -> dict[str, Any]:
        with open(self.state_file, "rb") as file:
            state = pickle.load(file)
        return state if isinstance(state, dict) else {}


def checkpoint_folder(root: Path, step: int) -> Path:
    return root / f"step_{step:012d}"


def save_checkpoint(
    model: BaseAlgorithm,
    root: Path,
    training_state: Mapping[str, Any],
    with_replay_buffer: bool,
) -> Checkpoint:
    """Write a complete checkpoint of `model` at its current step; the manifest goes last."""
    step = int(model.num_timesteps)
    path = checkpoint_folder(root, step)
    if path.exists():
        try:
            return read_checkpoint(path)  # nothing has changed since it was written
        except CheckpointError:
            shutil.rmtree(path)  # the remains of a save that was cut off
    path.mkdir(parents=True)
    write_atomically(path / MODEL, model.save)
    write_atomically(
        path / TRAINING_STATE, lambda tmp: tmp.write_bytes(pickle.dumps(dict(training_state)))
    )
    names = [MODEL, TRAINING_STATE]
    if with_replay_buffer and isinstance(model, OffPolicyAlgorithm):
        write_atomically(path / REPLAY_BUFFER, model.save_replay_buffer)
        names.append(REPLAY_BUFFER)
    files = {name: _file_record(path / name) for name in names}
    _write_manifest(path, step, files)
    fsync_dir(root)
    return Checkpoint(path, step, files)


def _write_manifest(path: Path, step: int, files: Mapping[str, Mapping[str, Any]]) -> None:
    manifest = {
        "format": FORMAT_VERSION,
        "step": step,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": dict(files),
    }
    atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _file_record(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint in `path` after checking every file against the manifest."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise CheckpointError(path, f"{path}: no {MANIFEST} (the save did not finish)")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        step = int(manifest["step"])
        files = {str(name): dict(record) for name, record in manifest["files"].items()}
        expected = {name: (int(r["bytes"]), str(r["sha256"])) for name, r in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(path, f"{manifest_file}: unreadable manifest ({error})") from None
    for name in (MODEL, TRAINING_STATE):
        if name not in files:
            raise CheckpointError(path, f"{manifest_file}: lists no {name}")
    for name, (size, sha256) in expected.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(path, f"{file}: missing")
        if file.stat().st_size != size:
            raise CheckpointError(
                path, f"{file}: {file.stat().st_size} bytes, the manifest says {size} (truncated)"
            )
        if _sha256(file) != sha256:
            raise CheckpointError(
                path, f"{file}: contents differ from the manifest's checksum (corrupt)"
            )
    return Checkpoint(path, step, files)


def checkpoint_folders(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every `step_<N>` folder under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _FOLDER.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def newest_checkpoint(root: Path) -> tuple[Checkpoint | None, list[CheckpointError]]:
    """The newest complete checkpoint, and why each newer one cannot be used."""
    skipped: list[CheckpointError] = []
    for _, path in reversed(checkpoint_folders(root)):
        try:
            return read_checkpoint(path), skipped
        except CheckpointError as error:
            skipped.append(error)
    return None, skipped


def set_aside(path: Path) -> None:
    """Take an unusable checkpoint out of the `step_<N>` series: an unfinished save is removed,
    a corrupt one renamed `unusable_step_<N>` for inspection."""
    if not (path / MANIFEST).is_file():
        shutil.rmtree(path, ignore_errors=True)
        return
    target = path.with_name(f"unusable_{path.name}")
    if target.exists():
        shutil.rmtree(target)
    path.rename(target)


def prune_checkpoints(root: Path, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints, the replay buffer only in the newest.

    Called right after a save completed, so any folder without a manifest is the remains of
    an earlier save that was cut off.
    """
    complete = [path for _, path in checkpoint_folders(root) if (path / MANIFEST).is_file()]
    for _, path in checkpoint_folders(root):
        if not (path / MANIFEST).is_file():
            shutil.rmtree(path, ignore_errors=True)
    for path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    for path in complete[-keep:-1]:
        _drop_replay_buffer(path)


def _drop_replay_buffer(path: Path) -> None:
    # The manifest stops listing the buffer before the file goes, so the checkpoint stays
    # complete (resuming from it starts with an empty buffer, and says so).
    buffer_file = path / REPLAY_BUFFER
    if not buffer_file.exists():
        return
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = {k: v for k, v in manifest["files"].items() if k != REPLAY_BUFFER}
        _write_manifest(path, int(manifest["step"]), files)
    except (OSError, ValueError, KeyError, TypeError):
        return
    buffer_file.unlink(missing_ok=True)


def replay_buffer_bytes(model: BaseAlgorithm) -> int:
    """Bytes a saved replay buffer takes: SB3 pickles its preallocated arrays whole."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return 0
    return sum(v.nbytes for v in vars(buffer).values() if isinstance(v, np.ndarray))


def check_room_for_replay_buffers(
    folder: Path,
    buffer_bytes: int,
    advice: str = "free space, lower buffer_size or set save_replay_buffer: false",
) -> None:
    """Two buffers exist on disk while a new checkpoint replaces the previous one."""
    needed = 2 * buffer_bytes + (64 << 20)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise UserError(
            f"save_replay_buffer: checkpoints need {_gib(needed)} for the replay buffer "
            f"({_gib(buffer_bytes)} each) but {folder} has {_gib(free)} free; {advice}"
        )


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


def capture_rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
    }
    if th.cuda.is_available():
        states["cuda"] = th.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    if "python" in states:
        random.setstate(states["python"])
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    if "torch" in states:
        th.set_rng_state(states["torch"])
    if "cuda" in states and th.cuda.is_available():
        th.cuda.set_rng_state_all(states["cuda"])
