"""Checkpoint files: complete only with a manifest that matches, pruned safely."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from zoo.algorithms.algos import ZooDQN
from zoo.core.errors import UserError
from zoo.runs.checkpoints import (
    MANIFEST,
    MODEL,
    REPLAY_BUFFER,
    CheckpointError,
    capture_rng_states,
    check_room_for_replay_buffers,
    checkpoint_folders,
    newest_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    replay_buffer_bytes,
    restore_rng_states,
    save_checkpoint,
    set_aside,
)


@pytest.fixture
def model() -> ZooDQN:
    dqn = ZooDQN(
        "MlpPolicy",
        gym.make("CartPole-v1"),
        buffer_size=500,
        learning_starts=50,
        policy_kwargs={"net_arch": [16]},
        seed=0,
        device="cpu",
    )
    dqn.learn(100)
    return dqn


def _save_at(model: ZooDQN, root: Path, step: int, with_buffer: bool = False) -> Path:
    model.num_timesteps = step
    return save_checkpoint(model, root, {"rng": capture_rng_states()}, with_buffer).path


def test_a_checkpoint_round_trips_with_its_manifest(model: ZooDQN, tmp_path: Path) -> None:
    path = _save_at(model, tmp_path, 100, with_buffer=True)
    checkpoint = read_checkpoint(path)
    assert checkpoint.step == 100
    assert checkpoint.replay_buffer_file == path / REPLAY_BUFFER
    manifest = json.loads((path / MANIFEST).read_text())
    assert set(manifest["files"]) == {MODEL, "training_state.pkl", REPLAY_BUFFER}
    assert manifest["files"][MODEL]["bytes"] == (path / MODEL).stat().st_size
    assert not list(path.glob(".*partial*")), "no temporary files are left behind"
    loaded = ZooDQN.load(checkpoint.model_file)
    assert loaded.num_timesteps == 100


def test_missing_manifest_is_an_unfinished_save(model: ZooDQN, tmp_path: Path) -> None:
    path = _save_at(model, tmp_path, 100)
    (path / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match=r"no manifest\.json \(the save did not finish\)"):
        read_checkpoint(path)


def test_truncated_and_corrupt_zips_are_detected(model: ZooDQN, tmp_path: Path) -> None:
    path = _save_at(model, tmp_path, 100)
    data = (path / MODEL).read_bytes()
    (path / MODEL).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (path / MODEL).write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(path)


def test_newest_complete_checkpoint_wins_over_broken_newer_ones(
    model: ZooDQN, tmp_path: Path
) -> None:
    _save_at(model, tmp_path, 100)
    corrupt = _save_at(model, tmp_path, 200)
    unfinished = _save_at(model, tmp_path, 300)
    (corrupt / "training_state.pkl").write_bytes(b"garbage")
    (unfinished / MANIFEST).unlink()
    checkpoint, skipped = newest_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint.step == 100
    assert [error.path for error in skipped] == [unfinished, corrupt]
    for error in skipped:
        set_aside(error.path)
    assert not unfinished.exists(), "an unfinished save is removed"
    assert (tmp_path / f"unusable_{corrupt.name}").is_dir(), "a corrupt one is kept aside"
    assert [step for step, _ in checkpoint_folders(tmp_path)] == [100]


def test_pruning_keeps_the_newest_and_the_buffer_only_in_the_newest(
    model: ZooDQN, tmp_path: Path
) -> None:
    for step in (100, 200, 300, 400):
        _save_at(model, tmp_path, step, with_buffer=True)
        prune_checkpoints(tmp_path, keep=2)
    steps = [step for step, _ in checkpoint_folders(tmp_path)]
    assert steps == [300, 400]
    older, newest = (read_checkpoint(path) for _, path in checkpoint_folders(tmp_path))
    assert older.replay_buffer_file is None and not (older.path / REPLAY_BUFFER).exists()
    assert newest.replay_buffer_file is not None


def test_replay_buffer_size_and_disk_room(model: ZooDQN, tmp_path: Path) -> None:
    size = replay_buffer_bytes(model)
    assert size > 0
    path = _save_at(model, tmp_path, 100, with_buffer=True)
    assert abs((path / REPLAY_BUFFER).stat().st_size - size) < size * 0.1 + 4096
    check_room_for_replay_buffers(tmp_path, size)  # a few kB fit anywhere
    with pytest.raises(UserError, match=r"save_replay_buffer: checkpoints need .* GiB free"):
        check_room_for_replay_buffers(tmp_path, 2**60)


def test_rng_states_restore_exactly() -> None:
    states = capture_rng_states()
    first = (np.random.rand(), th.rand(1).item())
    restore_rng_states(states)
    assert (np.random.rand(), th.rand(1).item()) == first
