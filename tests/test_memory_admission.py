"""A replay buffer that cannot fit in memory is refused before anything is created."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from zoo.config.config import build_config
from zoo.core.errors import UserError
from zoo.training.memory_admission import admit_replay_buffer, replay_buffer_bytes_needed

InProcess = Callable[..., subprocess.CompletedProcess[str]]


def test_an_impossible_buffer_is_one_line_and_exit_2(in_process: InProcess, tmp_path: Path) -> None:
    result = in_process(
        "train", "--algo", "dqn", "--env", "Breakout", "--set", "buffer_size=1000000000"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("zoo: error: buffer_size 1,000,000,000: the replay buffer needs")
    assert "GB is available; lower buffer_size (about" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run folder, no logs folder


def test_sizes_follow_the_buffer_kind() -> None:
    frames = build_config("dqn", "Breakout", overrides=["buffer_size=100000"])
    assert frames.hyperparams["replay_buffer"] == "frames"
    assert 0.70e9 < replay_buffer_bytes_needed(frames) <= 0.75e9
    sb3 = build_config("dqn", "Breakout", overrides=["buffer_size=100000", "replay_buffer=sb3"])
    assert replay_buffer_bytes_needed(sb3) == 100_000 * (2 * 4 * 84 * 84 + 20)
    ram = build_config("qrdqn", "SpaceInvaders-ram", overrides=["buffer_size=1000"])
    assert replay_buffer_bytes_needed(ram) == 1000 * (2 * 3 * 128 + 20)
    cartpole = build_config("dqn", "CartPole-v1", overrides=["buffer_size=1000"])
    assert replay_buffer_bytes_needed(cartpole) == 1000 * (2 * 4 * 4 + 20)  # float32 x 4
    assert replay_buffer_bytes_needed(build_config("a2c", "Breakout")) == 0


def test_the_message_names_what_to_lower() -> None:
    sb3 = build_config("dqn", "Breakout", overrides=["buffer_size=100000", "replay_buffer=sb3"])
    with pytest.raises(UserError, match=r"needs 5\.65 GB .* and 4\.00 GB is available") as error:
        admit_replay_buffer(sb3, available=4 * 10**9)
    assert "or store each frame once with --set replay_buffer=frames" in str(error.value)
    assert admit_replay_buffer(sb3, available=64 * 10**9) == replay_buffer_bytes_needed(sb3)
    with pytest.raises(UserError, match="free memory first"):
        admit_replay_buffer(sb3, available=10**6)


def test_a_frame_store_on_the_gpu_is_measured_against_the_gpus_free_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psutil
    import torch as th

    config = build_config(
        "dqn", "Breakout", overrides=["buffer_size=1000000", "frame_store=device"]
    )
    gpu_free, host_free = 3 * 10**9, 64 * 10**9
    monkeypatch.setattr(th.cuda, "mem_get_info", lambda device=None: (gpu_free, 80 * 10**9))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("M", (), {"available": host_free}))
    with pytest.raises(UserError, match=r"needs 7\.\d\d GB of GPU memory .* 3\.00 GB is available"):
        admit_replay_buffer(config, "cuda")
    assert admit_replay_buffer(config, "cpu") == replay_buffer_bytes_needed(config)  # host RAM
    on_host = build_config("dqn", "Breakout", overrides=["buffer_size=1000000"])
    assert admit_replay_buffer(on_host, "cuda") == replay_buffer_bytes_needed(on_host)


def _allocated_bytes(buffer: object) -> int:
    """Bytes of every numpy array a built buffer holds, its priority trees' included."""
    import numpy as np

    from zoo.replay.prioritized import SegmentTree

    attributes = list(vars(buffer).values())
    arrays = [value for value in attributes if isinstance(value, np.ndarray)]
    arrays += [value.nodes for value in attributes if isinstance(value, SegmentTree)]
    return sum(array.nbytes for array in arrays)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["replay_buffer_kwargs={episode_start_reserve: 2}"],
        ["n_envs=3", "replay_buffer_kwargs={episode_start_reserve: 0.5}"],
        ["prioritized_replay=true"],
        ["replay_buffer=sb3", "optimize_memory_usage=false"],
    ],
)
def test_admission_counts_what_the_buffer_allocates(overrides: list[str]) -> None:
    """The admitted size is the built buffer's, for every setting that changes it (issue 27:
    episode_start_reserve 2 was counted as the default 1/32)."""
    from zoo.envs.stack import make_vec_env_for
    from zoo.training.model_setup import build_model

    config = build_config(
        "dqn", "Breakout", overrides=["buffer_size=3000", "vec_env=sb3", *overrides]
    )
    env = make_vec_env_for(config.env, config.env_settings(), 0)
    try:
        buffer = build_model(config, env, "cpu").replay_buffer  # type: ignore[attr-defined]
    finally:
        env.close()
    assert replay_buffer_bytes_needed(config) == _allocated_bytes(buffer)


def test_a_larger_episode_start_reserve_is_counted() -> None:
    plain = build_config("dqn", "Breakout", overrides=["buffer_size=1100000"])
    reserve = build_config(
        "dqn",
        "Breakout",
        overrides=["buffer_size=1100000", "replay_buffer_kwargs={episode_start_reserve: 2}"],
    )
    # Three frames per transition instead of 1 + 1/32: about 23 GB, not 8.
    assert replay_buffer_bytes_needed(plain) < 8.3e9
    assert replay_buffer_bytes_needed(reserve) > 23e9
