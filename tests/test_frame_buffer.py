"""FrameReplayBuffer returns SB3's batches, bit for bit, from real Breakout frames.

Both buffers are fed the same stream of transitions from zoo's own env stacks (the `ale`
backend and SB3's wrappers), several envs, with lost lives, game overs, time-limit
truncations and several wrap-arounds of a small buffer, as SB3's training loop stores them.
Then the shipped Breakout DQN trains and resumes on it, and a resumed buffer samples what
the saved one did.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from zoo.algorithms.model_loading import load_model
from zoo.config.config import build_config
from zoo.core.errors import UserError
from zoo.envs.stack import make_vec_env_for
from zoo.replay.frame_buffer import FrameReplayBuffer
from zoo.replay.sizing import frame_buffer_bytes, sb3_buffer_bytes
from zoo.runs.checkpoints import (
    capture_rng_states,
    newest_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from zoo.training.model_setup import StartPoint, build_model, starting_model
from zoo.training.train import TrainOptions

N_ENVS = 3
STEPS = 260  # vector steps: 780 transitions through a buffer of 3 x 50
BUFFER_SIZE = N_ENVS * 50
N_STEPS = 3
GAMMA = 0.9


@dataclass
class Events:
    life_losses: int = 0
    game_overs: int = 0
    truncations: int = 0


@dataclass
class Buffers:
    """SB3's two buffers and their frame counterparts, fed alike."""

    pairs: list[tuple[ReplayBuffer, FrameReplayBuffer]] = field(default_factory=list)

    def add(self, *transition: Any) -> None:
        for sb3, frames in self.pairs:
            sb3.add(*transition)
            frames.add(*transition)


def _transitions(backend: str, events: Events) -> Iterator[tuple[Any, ...]]:
    """(obs, next_obs, action, reward, done, infos) as SB3's `_store_transition` stores them:
    next_obs is the terminal observation where an episode ended."""
    config = build_config(
        "dqn",
        "Breakout",
        overrides=[
            f"vec_env={backend}",
            f"n_envs={N_ENVS}",
            "seed=1",
            # Games cut at 150 agent steps: truncations beside random play's game overs.
            "env_kwargs={max_num_frames_per_episode: 600}",
        ],
    )
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    rng = np.random.default_rng(0)
    try:
        obs = env.reset()
        for _ in range(STEPS):
            actions = rng.integers(0, env.action_space.n, size=N_ENVS)  # type: ignore[attr-defined]
            new_obs, rewards, dones, infos = env.step(actions)
            next_obs = np.array(new_obs)
            for index in np.flatnonzero(dones):
                next_obs[index] = infos[index]["terminal_observation"]
                truncated = infos[index].get("TimeLimit.truncated", False)
                game_over = "episode" in infos[index]
                events.truncations += truncated
                events.game_overs += game_over and not truncated
                events.life_losses += not game_over
            yield np.array(obs), next_obs, actions[:, None], rewards, dones, infos
            obs = new_obs
    finally:
        env.close()


def _buffers(
    env_space: Any, action_space: Any, reserve: float | None = None, on_device: bool = False
) -> Buffers:
    extra: dict[str, Any] = {} if reserve is None else {"episode_start_reserve": reserve}
    extra["frames_on_device"] = on_device
    common = {"n_envs": N_ENVS, "device": "cpu"}
    return Buffers(
        [
            (
                ReplayBuffer(BUFFER_SIZE, env_space, action_space, **common),
                FrameReplayBuffer(BUFFER_SIZE, env_space, action_space, **common, **extra),
            ),
            (
                NStepReplayBuffer(
                    BUFFER_SIZE, env_space, action_space, **common, n_steps=N_STEPS, gamma=GAMMA
                ),
                FrameReplayBuffer(
                    BUFFER_SIZE,
                    env_space,
                    action_space,
                    **common,
                    n_steps=N_STEPS,
                    gamma=GAMMA,
                    **extra,
                ),
            ),
        ]
    )


def _spaces(backend: str) -> tuple[Any, Any]:
    config = build_config("dqn", "Breakout", overrides=[f"vec_env={backend}", "n_envs=1"])
    env = make_vec_env_for(config.env, config.env_settings(), 0)
    spaces = env.observation_space, env.action_space
    env.close()
    return spaces


def _assert_same(expected: ReplayBufferSamples, got: ReplayBufferSamples) -> None:
    for name in ReplayBufferSamples._fields:
        want, have = getattr(expected, name), getattr(got, name)
        if want is None:
            assert have is None, name
            continue
        assert have.dtype == want.dtype and have.shape == want.shape, name
        assert th.equal(have, want), name


def _compare(sb3: ReplayBuffer, frames: FrameReplayBuffer, seed: int) -> int:
    """Every stored stack, and batches drawn with the same random numbers, are equal;
    returns how many stored transitions could not be rebuilt."""
    upper = sb3.buffer_size if sb3.full else sb3.pos
    indices = np.repeat(np.arange(upper), N_ENVS)
    envs = np.tile(np.arange(N_ENVS), upper)
    rebuildable = frames.rebuildable(indices, envs)
    keep_i, keep_e = indices[rebuildable], envs[rebuildable]
    assert np.array_equal(frames._stacks(keep_i, keep_e), sb3.observations[keep_i, keep_e])
    assert np.array_equal(
        frames._next_stacks(keep_i, keep_e), sb3.next_observations[keep_i, keep_e]
    )
    # Batches of transitions whose every env can be rebuilt: no draw is replaced.
    whole = np.flatnonzero(rebuildable.reshape(upper, N_ENVS).all(axis=1))
    batch = np.random.default_rng(seed).choice(whole, size=64)
    np.random.seed(seed)
    expected = sb3._get_samples(batch)
    np.random.seed(seed)
    _assert_same(expected, frames._get_samples(batch))
    return int((~rebuildable).sum())


# (backend, frames_on_device): the ring on the model's device is checked on the CPU here.
# One backend in the fast tier; the others with the slow runs.
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("backend", "on_device"),
    [("ale", False), pytest.param("sb3", False, marks=SLOW), pytest.param("ale", True, marks=SLOW)],
)
def test_batches_equal_sb3_buffers_bit_for_bit(backend: str, on_device: bool) -> None:
    events = Events()
    buffers = _buffers(*_spaces(backend), on_device=on_device)
    for _, frames in buffers.pairs:
        assert isinstance(frames.frames, th.Tensor) == on_device
    for step, transition in enumerate(_transitions(backend, events)):
        buffers.add(*transition)
        if step % 23 == 22:
            for sb3, frames in buffers.pairs:
                assert _compare(sb3, frames, seed=step) == 0  # the reserve was enough
        if step in (60, STEPS - 1):
            for seed in (step, step + 1):  # whole `sample` calls, as DQN makes them
                for sb3, frames in buffers.pairs:
                    np.random.seed(seed)
                    expected = sb3.sample(32)
                    np.random.seed(seed)
                    _assert_same(expected, frames.sample(32))
    assert events.life_losses >= 5 and events.game_overs >= 1 and events.truncations >= 1
    sb3, _ = buffers.pairs[0]
    assert sb3.full and STEPS // sb3.buffer_size >= 4  # wrapped around several times


@pytest.mark.parametrize("on_device", [False, True])
def test_a_ring_whose_reserve_runs_out_grows_and_stays_sb3s(on_device: bool) -> None:
    """With no reserve for episode starts (SB3's stack writes one frame more after each lost
    life), the ring grows before it would overwrite a frame a kept transition needs: every
    transition stays SB3's, bit for bit (issue 27: random Breakout play loses a life on 125
    of 4,000 steps, right at the default reserve of 1/32)."""
    events = Events()
    buffers = _buffers(*_spaces("sb3"), reserve=0.0, on_device=on_device)
    first_capacity = buffers.pairs[0][1].frame_capacity
    for step, transition in enumerate(_transitions("sb3", events)):
        buffers.add(*transition)
        if step % 23 == 22 or step == STEPS - 1:
            for sb3, frames in buffers.pairs:
                assert _compare(sb3, frames, seed=step) == 0  # nothing lost
    assert events.life_losses >= 5
    for _, frames in buffers.pairs:
        assert frames.frame_capacity > first_capacity
        assert isinstance(frames.frames, th.Tensor) == on_device
        assert len(frames.frames) == frames.frame_capacity


def test_frames_lost_in_a_buffer_that_did_not_grow_are_never_sampled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A buffer saved before rings grew may hold transitions whose frames were overwritten:
    those are never drawn, and every other one still equals SB3's."""
    monkeypatch.setattr(FrameReplayBuffer, "_make_room", lambda self, new_frames: None)
    events = Events()
    buffers = _buffers(*_spaces("sb3"), reserve=0.0)
    lost = 0
    for step, transition in enumerate(_transitions("sb3", events)):
        buffers.add(*transition)
        if step % 23 == 22:
            for sb3, frames in buffers.pairs:
                lost += _compare(sb3, frames, seed=step)
    assert lost > 0
    sb3, frames = buffers.pairs[1]
    indices = np.repeat(np.arange(frames.buffer_size), N_ENVS)
    envs = np.tile(np.arange(N_ENVS), frames.buffer_size)
    unrebuildable = ~frames.rebuildable(indices, envs)
    assert unrebuildable.any()
    # Those stacks would straddle the write position: rebuilt, they are not SB3's.
    bad_i, bad_e = indices[unrebuildable], envs[unrebuildable]
    assert not np.array_equal(frames._stacks(bad_i, bad_e), sb3.observations[bad_i, bad_e])
    np.random.seed(0)
    drawn_i, drawn_e = frames._redraw_unrebuildable(indices, envs)
    assert frames.rebuildable(drawn_i, drawn_e).all()
    assert np.array_equal(drawn_i[~unrebuildable], indices[~unrebuildable])


def test_a_pickled_buffer_samples_the_same_batches() -> None:
    import pickle

    events = Events()
    buffers = _buffers(*_spaces("ale"))
    for step, transition in enumerate(_transitions("ale", events)):
        buffers.add(*transition)
        if step == 15:  # the ring is not full yet: only the written frames are saved
            _, frames = buffers.pairs[1]
            data = pickle.dumps(frames, protocol=pickle.HIGHEST_PROTOCOL)
            assert len(data) < frames.frames.nbytes / 2
            restored = pickle.loads(data)
            assert restored.frames.flags.writeable
            for seed in (0, 1):
                np.random.seed(seed)
                expected = frames.sample(32)
                np.random.seed(seed)
                _assert_same(expected, restored.sample(32))
            break


def test_a_ring_on_the_device_saves_the_host_rings_compact_form() -> None:
    import pickle

    buffers = {
        on_device: _buffers(*_spaces("ale"), on_device=on_device).pairs[1][1]
        for on_device in (False, True)
    }
    for step, transition in enumerate(_transitions("ale", Events())):
        for buffer in buffers.values():
            buffer.add(*transition)
        if step == 40:
            break
    host, device = buffers[False], buffers[True]
    host_state, device_state = host.__getstate__(), device.__getstate__()
    assert isinstance(device_state["frames"], np.ndarray)
    assert np.array_equal(device_state["frames"], host_state["frames"])
    restored = pickle.loads(pickle.dumps(device, protocol=pickle.HIGHEST_PROTOCOL))
    restored.device = "cpu"  # as SB3 sets it after loading a saved buffer
    assert isinstance(restored.frames, th.Tensor) and restored.frames.device == th.device("cpu")
    np.random.seed(3)
    expected = host.sample(32)
    np.random.seed(3)
    _assert_same(expected, restored.sample(32))


def test_memory_of_a_full_buffer() -> None:
    shape = (4, 84, 84)
    assert frame_buffer_bytes(100_000, shape, 1) <= 0.75e9
    assert frame_buffer_bytes(1_000_000, shape, 1) <= 7.5e9
    assert sb3_buffer_bytes(100_000, shape, 1) == 100_000 * (2 * 4 * 84 * 84 + 20)


def test_refuses_what_is_not_a_frame_stack() -> None:
    import gymnasium as gym

    with pytest.raises(ValueError, match="uint8 frame stacks"):
        FrameReplayBuffer(10, gym.spaces.Box(0, 1, (4,)), gym.spaces.Discrete(2))
    space = gym.spaces.Box(0, 255, (2, 3, 3), dtype=np.uint8)
    buffer = FrameReplayBuffer(10, space, gym.spaces.Discrete(2), device="cpu")
    obs = np.arange(18, dtype=np.uint8).reshape(1, 2, 3, 3)
    with pytest.raises(ValueError, match="not its observation shifted by one frame"):
        buffer.add(obs, obs + 1, np.array([[0]]), np.zeros(1), np.zeros(1), [{}])


SHORT_BREAKOUT = [
    "--set", "buffer_size=400", "--set", "learning_starts=100", "--set", "eval_freq=0",
    "--set", "save_replay_buffer=true", "--set", "network=dqn2013", "--seed", "0", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_the_shipped_breakout_dqn_trains_and_resumes_on_it(
    in_process: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    first = in_process("train", "--algo", "dqn", "--env", "Breakout", "-n", "200", *SHORT_BREAKOUT)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    assert yaml.safe_load((run_dir / "config.yml").read_text())["replay_buffer"] == "frames"
    checkpoint, _ = newest_checkpoint(run_dir / "checkpoints")
    assert checkpoint is not None and checkpoint.replay_buffer_file is not None
    # The compact form on disk: about one 84x84 frame per transition.
    assert checkpoint.replay_buffer_file.stat().st_size < 220 * 84 * 84 + 200_000
    second = in_process("train", "--resume", str(run_dir), "-n", "300", "--quiet")
    assert second.returncode == 0, second.stderr
    assert "has no replay buffer" not in second.stderr
    model = load_model(run_dir / "final_model.zip", device="cpu")
    assert model.num_timesteps == 300
    assert isinstance(model.replay_buffer, FrameReplayBuffer)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("n_steps", "frame_store"),
    [pytest.param(1, "host", marks=SLOW), (3, "host"), pytest.param(3, "device", marks=SLOW)],
)
def test_resume_restores_the_buffer_exactly(tmp_path: Path, n_steps: int, frame_store: str) -> None:
    """The batch drawn before the process is gone and the one drawn after `--resume` loaded
    the checkpoint are the same, field by field (the newest transitions included). With
    `frame_store: device` the ring is a tensor on the model's device (the CPU here)."""
    config = build_config(
        "dqn",
        "Breakout",
        overrides=[
            "seed=0",
            "n_envs=2",
            "buffer_size=400",
            "learning_starts=100",
            "network=dqn2013",
            f"n_steps={n_steps}",
            "save_replay_buffer=true",
            f"frame_store={frame_store}",
        ],
    )
    env = make_vec_env_for(config.env, config.env_settings(), config.seed)
    try:
        model = build_model(config, env, "cpu")
        model.learn(300)
        saved = save_checkpoint(model, tmp_path, {"rng": capture_rng_states()}, True)
        buffer = model.replay_buffer  # type: ignore[attr-defined]
        every = np.arange(buffer.size())
        before = [_draw(buffer, seed, every) for seed in (0, 1)]
        del model, buffer
        start = StartPoint(resumed=True, checkpoint=read_checkpoint(saved.path))
        options = TrainOptions()
        resumed = starting_model(config, env, start, options.device, options.warn)
        after = [_draw(resumed.replay_buffer, seed, every) for seed in (0, 1)]  # type: ignore[attr-defined]
        ring = resumed.replay_buffer.frames  # type: ignore[attr-defined]
        assert isinstance(ring, th.Tensor) == (frame_store == "device")
    finally:
        env.close()
    for expected, got in zip(before, after, strict=True):
        for one, other in zip(expected, got, strict=True):
            _assert_same(one, other)


def _draw(buffer: Any, seed: int, every: np.ndarray) -> list[ReplayBufferSamples]:
    np.random.seed(seed)
    return [buffer.sample(256), buffer._get_samples(every)]


def test_a_full_ring_is_loaded_without_a_copy() -> None:
    import pickle

    import gymnasium as gym

    space = gym.spaces.Box(0, 255, (2, 3, 3), dtype=np.uint8)
    buffer = FrameReplayBuffer(4, space, gym.spaces.Discrete(2), device="cpu")
    for step in range(12):  # a stack that never continues: two frames per transition
        obs = np.full((1, 2, 3, 3), step + 1, dtype=np.uint8)
        buffer.add(obs, obs, np.array([[0]]), np.zeros(1), np.ones(1), [{}])
    restored = pickle.loads(pickle.dumps(buffer, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored.frames.base is not None and restored.frames.flags.writeable
    assert np.array_equal(restored.frames, buffer.frames)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replay_buffer_kwargs.foo=1", "the frames replay buffer takes no 'foo'"),
        (
            "replay_buffer_kwargs.episode_start_reserve=-1",
            "episode_start_reserve must be a number >= 0",
        ),
        ("replay_buffer_kwargs.handle_timeout_termination=2", "must be true or false, got 2"),
        ("replay_buffer=fast", "key 'replay_buffer': expected one of frames, sb3"),
        ("frame_store=gpu", "key 'frame_store': expected one of host, device"),
    ],
)
def test_bad_replay_settings_are_one_line(
    in_process: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    setting: str,
    message: str,
) -> None:
    result = in_process("train", "--algo", "dqn", "--env", "Breakout", "--set", setting)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_only_the_frame_buffer_has_a_frame_store() -> None:
    with pytest.raises(UserError, match="key 'frame_store': only the frame buffer has a frame"):
        build_config("dqn", "Breakout", overrides=["replay_buffer=sb3", "frame_store=device"])
    config = build_config("qrdqn", "Breakout", overrides=["frame_store=device"])
    assert config.algorithm_kwargs()["frame_store"] == "device"
