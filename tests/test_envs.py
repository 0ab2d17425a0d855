from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from zoo.core.errors import UserError
from zoo.envs.stack import EnvSettings, atari_game_names, make_vec_env_for, resolve_env

PIXELS = EnvSettings(n_envs=2, vec_env="dummy", frame_stack=4)
# Both backends of pixel games must behave the same way in every test that takes `vec_env`.
BACKENDS = ["dummy", "ale"]


def _pixels(vec_env: str, **changes: Any) -> EnvSettings:
    return dataclasses.replace(PIXELS, vec_env=vec_env, **changes)


@pytest.mark.parametrize(
    ("name", "expected", "kind"),
    [
        ("Breakout", "BreakoutNoFrameskip-v4", "atari"),
        ("pong", "PongNoFrameskip-v4", "atari"),
        ("SpaceInvaders", "SpaceInvadersNoFrameskip-v4", "atari"),
        ("SpaceInvaders-ram", "SpaceInvaders-ramNoFrameskip-v4", "atari_ram"),
        ("spaceinvaders-RAMnoframeskip-v4", "SpaceInvaders-ramNoFrameskip-v4", "atari_ram"),
        ("BreakoutNoFrameskip-v4", "BreakoutNoFrameskip-v4", "atari"),
        ("ALE/Breakout-v5", "ALE/Breakout-v5", "atari"),
        ("CartPole-v1", "CartPole-v1", "other"),
    ],
)
def test_name_resolution(name: str, expected: str, kind: str) -> None:
    spec = resolve_env(name)
    assert (spec.name, spec.kind) == (expected, kind)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UserError) as error:
        resolve_env("Breakot")
    assert "did you mean Breakout" in str(error.value)
    with pytest.raises(UserError, match="only Atari games have a -ram variant"):
        resolve_env("CartPole-v1-ram")
    assert "Breakout" in atari_game_names() and len(atari_game_names()) > 50


@pytest.mark.parametrize("vec_env", BACKENDS)
def test_pixel_observations_are_channel_first_uint8(vec_env: str) -> None:
    env = make_vec_env_for(resolve_env("Breakout"), _pixels(vec_env), seed=0)
    obs = env.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space == spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert env.action_space == spaces.Discrete(4)
    # a new episode's stack holds its first frame, zeros before it
    assert not obs[:, :3].any() and obs[:, 3].any()
    obs, *_ = env.step(np.zeros(2, dtype=np.int64))
    assert not obs[:, :2].any() and obs[:, 2:].any(axis=(2, 3)).all()
    env.close()


def test_v5_ids_do_not_skip_frames_twice() -> None:
    env = make_vec_env_for(resolve_env("ALE/Breakout-v5"), PIXELS, seed=0)
    assert env.get_attr("unwrapped")[0]._frameskip == 1
    assert env.reset().shape == (2, 4, 84, 84)
    env.close()


def test_ram_observations_stack_a_window() -> None:
    settings = EnvSettings(n_envs=2, vec_env="dummy", frame_stack=3)
    env = make_vec_env_for(resolve_env("SpaceInvaders-ram"), settings, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 384) and obs.dtype == np.uint8
    # the newest RAM state is the last 128 bytes of the window
    obs, *_ = env.step(np.zeros(2, dtype=np.int64))
    assert env.get_attr("unwrapped")[0]._frameskip == 4
    env.close()


def _rewards(vec_env: str, clip: bool, steps: int = 400) -> np.ndarray:
    settings = _pixels(vec_env, n_envs=1, clip_reward=clip)
    env = make_vec_env_for(resolve_env("SpaceInvaders"), settings, seed=3)
    env.reset()
    rng = np.random.default_rng(0)
    rewards = [env.step(rng.integers(0, 6, size=1))[1][0] for _ in range(steps)]
    env.close()
    return np.array(rewards)


@pytest.mark.slow
@pytest.mark.parametrize("vec_env", BACKENDS)
def test_reward_clipping(vec_env: str) -> None:
    clipped, raw = _rewards(vec_env, clip=True), _rewards(vec_env, clip=False)
    assert raw.max() > 1  # Space Invaders pays 5 to 30 points per invader
    assert set(np.unique(clipped)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(clipped, np.sign(raw))


@dataclass
class EpisodeEnd:
    """One `done` of one env, with what led to it."""

    info: dict[str, Any]
    previous: np.ndarray  # the env's observation before the last step
    first: np.ndarray  # the observation returned with the done: the next episode's first
    steps: int  # agent steps in this game so far
    clipped_score: float  # sum of the (clipped) rewards in this game so far
    lives_lost: int  # life-loss episode ends in this game so far


def _episode_ends(
    vec_env: str, game: str, games: int, seed: int = 1, **changes: Any
) -> list[EpisodeEnd]:
    """Random play on 2 envs until `games` whole games ended; every episode end on the way."""
    env = make_vec_env_for(resolve_env(game), _pixels(vec_env, **changes), seed=seed)
    obs = env.reset()
    rng = np.random.default_rng(seed)
    steps, scores, lives_lost = np.zeros(2, int), np.zeros(2), np.zeros(2, int)
    ends: list[EpisodeEnd] = []
    for _ in range(20_000):
        previous = obs
        obs, rewards, dones, infos = env.step(rng.integers(0, int(env.action_space.n), size=2))
        steps += 1
        scores += rewards
        for i in np.flatnonzero(dones):
            whole_game = "episode" in infos[i]
            lives_lost[i] += not whole_game
            ends.append(
                EpisodeEnd(infos[i], previous[i], obs[i], steps[i], scores[i], lives_lost[i])
            )
            if whole_game:
                steps[i], scores[i], lives_lost[i] = 0, 0.0, 0
        if sum("episode" in end.info for end in ends) >= games:
            env.close()
            return ends
    raise AssertionError("not enough games ended")


def _check_terminal_observation(end: EpisodeEnd) -> None:
    """The last observation of an episode is in the info, its stack one frame on from the one
    before, and the observation returned with the done starts a new stack."""
    last = end.info["terminal_observation"]
    assert last.shape == (4, 84, 84) and last.dtype == np.uint8
    np.testing.assert_array_equal(last[:3], end.previous[1:])
    assert not end.first[:3].any() and end.first[3].any()


@pytest.mark.slow
@pytest.mark.parametrize("vec_env", BACKENDS)
def test_life_loss_ends_training_episodes_but_not_the_game(vec_env: str) -> None:
    end = _episode_ends(vec_env, "Breakout", games=1)[0]
    assert end.info["lives"] == 4  # one life lost, the game goes on
    assert "episode" not in end.info  # whole games only
    assert end.info["TimeLimit.truncated"] is False
    _check_terminal_observation(end)


@pytest.mark.slow
@pytest.mark.parametrize("vec_env", BACKENDS)
def test_full_game_scores_are_unclipped_sums_over_all_lives(vec_env: str) -> None:
    ends = _episode_ends(vec_env, "Breakout", games=2)
    games = [end for end in ends if "episode" in end.info]
    for end in ends:
        _check_terminal_observation(end)
    for game in games:
        episode = game.info["episode"]
        assert set(episode) == {"r", "l", "t"}
        assert game.lives_lost == 4 and game.info["lives"] == 0  # 5 lives, each one an episode
        # Breakout pays 1, 4 or 7 points a brick: the score is at least the clipped sum
        assert episode["r"] >= game.clipped_score and (episode["r"] > 0) == (game.clipped_score > 0)
        # length in frames: 4 per agent step, plus no-op and FIRE frames the agent never sees
        assert 4 * (game.steps - 1) < episode["l"] <= 4 * (game.steps + 3 * 5) + 30
        assert game.info["TimeLimit.truncated"] is False


@pytest.mark.slow
@pytest.mark.parametrize("vec_env", BACKENDS)
def test_without_life_loss_an_episode_is_a_whole_game(vec_env: str) -> None:
    end = _episode_ends(vec_env, "Breakout", games=1, terminal_on_life_loss=False)[0]
    assert end.info["lives"] == 0
    assert end.info["episode"]["l"] > 0 and end.lives_lost == 0
    _check_terminal_observation(end)


@pytest.mark.slow
@pytest.mark.parametrize("vec_env", BACKENDS)
def test_truncated_games(vec_env: str) -> None:
    kwargs = {"max_num_frames_per_episode": 400}
    end = _episode_ends(vec_env, "Pong", games=1, env_kwargs=kwargs)[0]
    assert end.info["TimeLimit.truncated"] is True
    assert 400 <= end.info["episode"]["l"] <= 431  # the cap, plus no-op frames
    _check_terminal_observation(end)


@pytest.mark.slow
def test_ale_backend_is_deterministic_for_a_seed() -> None:
    def observations(seed: int) -> list[np.ndarray]:
        env = make_vec_env_for(resolve_env("Breakout"), _pixels("ale"), seed=seed)
        rng = np.random.default_rng(0)
        seen = [env.reset()] + [env.step(rng.integers(0, 4, size=2))[0] for _ in range(60)]
        env.close()
        return seen

    first, again, other = observations(7), observations(7), observations(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.slow
def test_ale_backend_writes_monitor_files(tmp_path: Path) -> None:
    settings = _pixels("ale", terminal_on_life_loss=False)
    env = make_vec_env_for(resolve_env("Breakout"), settings, seed=0, monitor_dir=str(tmp_path))
    env.reset()
    rng = np.random.default_rng(0)
    scores = []
    while len(scores) < 2:
        _, _, dones, infos = env.step(rng.integers(0, 4, size=2))
        scores += [infos[i]["episode"]["r"] for i in np.flatnonzero(dones)]
    env.close()
    rows = [
        row
        for path in sorted(tmp_path.glob("*.monitor.csv"))
        for row in path.read_text().splitlines()[2:]
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.monitor.csv", "1.monitor.csv"]
    assert sorted(float(row.split(",")[0]) for row in rows) == sorted(scores)


@pytest.mark.slow
def test_ale_backend_monitor_time_goes_on_across_a_resume(tmp_path: Path) -> None:
    """A resumed session counts `t` from the header's t_start (the run's first start)."""
    an_hour_ago = time.time() - 3600
    for rank in range(2):
        header = json.dumps({"t_start": an_hour_ago, "env_id": "BreakoutNoFrameskip-v4"})
        (tmp_path / f"{rank}.monitor.csv").write_text(f"#{header}\nr,l,t\n1.0,100,10.0\n")
    settings = _pixels("ale", terminal_on_life_loss=False)
    env = make_vec_env_for(
        resolve_env("Breakout"), settings, seed=0, monitor_dir=str(tmp_path), append_monitor=True
    )
    env.reset()
    rng = np.random.default_rng(0)
    times: list[float] = []
    while not times:
        _, _, dones, infos = env.step(rng.integers(0, 4, size=2))
        times += [infos[i]["episode"]["t"] for i in np.flatnonzero(dones)]
    env.close()
    assert times[0] >= 3600


def test_ale_backend_refuses_what_it_cannot_do() -> None:
    with pytest.raises(UserError, match="Atari pixel games only"):
        make_vec_env_for(resolve_env("SpaceInvaders-ram"), _pixels("ale", frame_stack=3), seed=0)
    with pytest.raises(UserError, match="mode: not supported by vec_env ale"):
        make_vec_env_for(resolve_env("Breakout"), _pixels("ale", env_kwargs={"mode": 0}), seed=0)
