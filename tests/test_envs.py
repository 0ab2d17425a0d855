from __future__ import annotations

import numpy as np
import pytest

from zoo.envs import EnvSettings, atari_game_names, make_vec_env_for, resolve_env
from zoo.errors import UserError

PIXELS = EnvSettings(n_envs=2, vec_env="dummy", frame_stack=4)


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


def test_pixel_observations_are_channel_first_uint8() -> None:
    env = make_vec_env_for(resolve_env("Breakout"), PIXELS, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
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


def _rewards(clip: bool, steps: int = 400) -> np.ndarray:
    settings = EnvSettings(n_envs=1, vec_env="dummy", frame_stack=4, clip_reward=clip)
    env = make_vec_env_for(resolve_env("SpaceInvaders"), settings, seed=3)
    env.reset()
    rng = np.random.default_rng(0)
    rewards = [env.step(rng.integers(0, 6, size=1))[1][0] for _ in range(steps)]
    env.close()
    return np.array(rewards)


def test_reward_clipping() -> None:
    clipped, raw = _rewards(clip=True), _rewards(clip=False)
    assert raw.max() > 1  # Space Invaders pays 5 to 30 points per invader
    assert set(np.unique(clipped)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(clipped, np.sign(raw))


def _first_episode_end(terminal_on_life_loss: bool) -> dict:
    settings = EnvSettings(
        n_envs=1, vec_env="dummy", frame_stack=4, terminal_on_life_loss=terminal_on_life_loss
    )
    env = make_vec_env_for(resolve_env("Breakout"), settings, seed=1)
    env.reset()
    rng = np.random.default_rng(1)
    for _ in range(20_000):
        _, _, dones, infos = env.step(rng.integers(0, 4, size=1))
        if dones[0]:
            env.close()
            return infos[0]
    raise AssertionError("no episode ended")


def test_life_loss_ends_training_episodes_but_not_the_game() -> None:
    info = _first_episode_end(terminal_on_life_loss=True)
    assert info["lives"] == 4  # one life lost, the game goes on
    assert "episode" not in info  # the Monitor only reports whole games
    assert "terminal_observation" in info


def test_without_life_loss_an_episode_is_a_whole_game() -> None:
    info = _first_episode_end(terminal_on_life_loss=False)
    assert info["lives"] == 0
    assert info["episode"]["l"] > 0
