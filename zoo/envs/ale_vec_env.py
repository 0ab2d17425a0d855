"""The `ale` env backend: ale-py's C++ `AtariVectorEnv` behind SB3's `VecEnv` interface.

ale-py steps every game in C++ threads and does the DeepMind preprocessing there too (no-op
starts, the action repeated with a max over the last two frames, 84x84 gray, FIRE on reset,
a stack of frames, channel first). This adapter adds what SB3 and zoo expect on top of it:

- same-step autoreset: on a game's end the returned observation is the new game's first one
  and the last one goes to `info["terminal_observation"]`, with `TimeLimit.truncated`;
- a lost life ends a training episode without ending the game, as SB3's EpisodicLifeEnv does:
  ale-py's own `episodic_life` restarts the whole game, so it is not used; instead its
  `life_loss_info` flag reports the loss and the frame stack is cleared here, as
  VecFrameStack clears it at every episode start;
- rewards are clipped here, after the full-game score has been counted from the raw ones:
  `info["episode"]` (`r`, `l` in frames, `t`) and the monitor files are those of SB3's Monitor
  placed below the life-loss and clipping wrappers, i.e. whole games, unclipped.

Known differences from the SB3 stack (docs/guide/envs.md): after a lost life the game goes on with the
agent's own next action (SB3 plays NOOP, FIRE and UP as hidden steps), FIRE at a game's start
is one frame before the no-ops (SB3: after them, then UP), and frames come from ALE's gray
palette rather than an RGB-to-gray conversion.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor, ResultsWriter
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from zoo.core.errors import UserError
from zoo.envs.monitor_files import first_session_start
from zoo.schema.keys import MAX_GAME_FRAMES

# env_kwargs of ale-py's gym ids that the C++ env also takes, and its name for each.
SUPPORTED_ENV_KWARGS = {
    "repeat_action_probability": "repeat_action_probability",
    "full_action_space": "full_action_space",
    "max_num_frames_per_episode": "max_num_frames_per_episode",
}
_SEED_MODULUS = 2**31 - 1  # ALE takes C ints; zoo seeds go up to 2**32 - 1


def ale_vector_available() -> bool:
    """ale-py ships AtariVectorEnv from 0.11 on."""
    try:
        from ale_py.vector_env import AtariVectorEnv  # noqa: F401
    except ImportError:
        return False
    return True


class AleVecEnv(VecEnv):
    """`n_envs` games of one Atari ROM in ale-py's C++ vector env, as an SB3 VecEnv."""

    def __init__(
        self,
        game: str,
        n_envs: int,
        *,
        env_id: str = "",
        frame_skip: int,
        noop_max: int,
        screen_size: int,
        frame_stack: int,
        terminal_on_life_loss: bool,
        clip_reward: bool,
        repeat_action_probability: float = 0.0,
        full_action_space: bool = False,
        max_num_frames_per_episode: int = MAX_GAME_FRAMES,
        threads: int = 0,
        monitor_dir: str | None = None,
        append_monitor: bool = False,
        render_mode: str | None = None,
    ) -> None:
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        self._ale = AtariVectorEnv(
            game,
            n_envs,
            num_threads=threads,
            frameskip=frame_skip,
            noop_max=noop_max,
            img_height=screen_size,
            img_width=screen_size,
            stack_num=frame_stack,
            grayscale=True,
            maxpool=True,
            use_fire_reset=True,
            episodic_life=False,  # it would restart the game at every lost life
            life_loss_info=terminal_on_life_loss,
            reward_clipping=False,  # the score needs the raw rewards; clipped below
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            max_num_frames_per_episode=max_num_frames_per_episode,
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
        self.frame_stack = frame_stack
        self.clip_reward = clip_reward
        self.terminal_on_life_loss = terminal_on_life_loss
        self._render_mode = render_mode
        observation_space = spaces.Box(
            low=0, high=255, shape=(frame_stack, screen_size, screen_size), dtype=np.uint8
        )
        action_space = spaces.Discrete(int(self._ale.single_action_space.n))  # type: ignore[attr-defined]
        super().__init__(n_envs, observation_space, action_space)
        resumed_start = (
            first_session_start(monitor_dir, 0) if monitor_dir and append_monitor else None
        )
        self._t_start = resumed_start or time.time()  # `t` goes on across resumes
        self._writers = _monitor_writers(monitor_dir, n_envs, env_id, self._t_start, append_monitor)
        self._last_obs = np.zeros((n_envs, *observation_space.shape), dtype=np.uint8)
        self._score = np.zeros(n_envs, dtype=np.float64)
        self._age = np.zeros(n_envs, dtype=np.int64)  # agent steps since the episode began
        self._lives = np.zeros(n_envs, dtype=np.int64)
        self._episode_frame = np.zeros(n_envs, dtype=np.int64)
        self._frame = np.zeros(n_envs, dtype=np.int64)
        self._closed = False

    # -- VecEnv --------------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        seeds = None
        if any(seed is not None for seed in self._seeds):
            seeds = np.array(
                [-1 if seed is None else int(seed) % _SEED_MODULUS for seed in self._seeds],
                dtype=np.int64,
            )
        obs, info = self._ale.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        self._score[:] = 0.0
        self._age[:] = 0
        self._remember(info)
        self.reset_infos = [{"lives": int(lives)} for lives in self._lives]
        self._last_obs = obs
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64, copy=False)
        self._ale.send(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, raw_rewards, terminated, truncated, info = self._ale.recv()
        episode_frame = info["episode_frame_number"].astype(np.int64)
        # A game that ended was restarted by ale-py in this very step: its episode frame count
        # starts again from the no-op frames, while a game that goes on only counts up.
        restarted = (terminated | truncated) & (episode_frame <= self._episode_frame)
        game_over = restarted | truncated
        life_lost = terminated & ~game_over
        dones = game_over | life_lost
        self._age += 1
        self._clear_older_frames(obs, ~dones)

        raw = raw_rewards.astype(np.float64)
        self._score += raw
        rewards = (np.sign(raw) if self.clip_reward else raw).astype(np.float32)
        infos: list[dict[str, Any]] = [{"lives": int(lives)} for lives in info["lives"]]
        if dones.any():
            final_obs = info.get("final_obs")
            self._end_episodes(obs, final_obs, infos, dones, game_over, terminated, info)
        self._remember(info)
        self._last_obs = obs
        return obs, rewards, dones, infos

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ale.close()
        del self._ale  # frees the C++ threads and games now, not at garbage collection
        for writer in self._writers:
            writer.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        values: dict[str, Any] = {"render_mode": self._render_mode}
        if attr_name == "lives":
            return [int(lives) for lives in self._lives[self._indices(indices)]]
        if attr_name not in values:
            raise AttributeError(
                f"the ale backend has no per-env attribute {attr_name!r} "
                "(the games live in C++; use vec_env: dummy for gymnasium env attributes)"
            )
        return [values[attr_name] for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"the ale backend cannot set {attr_name!r} on its C++ games")

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        raise AttributeError(f"the ale backend's C++ games have no method {method_name!r}")

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        # Its episode statistics are Monitor's, so SB3's evaluation counts whole games.
        return [wrapper_class is Monitor for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The newest preprocessed frame of each game as RGB: ale-py's vector env gives
        no colour screen (`zoo enjoy` records from the SB3 stack for that)."""
        newest = self._last_obs[:, -1]
        return [np.repeat(frame[:, :, None], 3, axis=2) for frame in newest]

    # -- bookkeeping ---------------------------------------------------------------------

    def _indices(self, indices: VecEnvIndices) -> np.ndarray:
        if indices is None:
            return np.arange(self.num_envs)
        if isinstance(indices, int):
            return np.array([indices])
        return np.asarray(list(indices))

    def _remember(self, info: dict[str, np.ndarray]) -> None:
        self._lives = info["lives"].astype(np.int64)
        self._episode_frame = info["episode_frame_number"].astype(np.int64)
        self._frame = info["frame_number"].astype(np.int64)

    def _clear_older_frames(self, stacks: np.ndarray, which: np.ndarray) -> None:
        """Zero the frames from before the episode began, as VecFrameStack does: needed after
        a lost life, where ale-py's stack runs on (its restarted games start cleared)."""
        for index in np.flatnonzero(which & (self._age < self.frame_stack - 1)):
            stacks[index, : self.frame_stack - 1 - self._age[index]] = 0

    def _end_episodes(
        self,
        obs: np.ndarray,
        final_obs: np.ndarray | None,
        infos: list[dict[str, Any]],
        dones: np.ndarray,
        game_over: np.ndarray,
        terminated: np.ndarray,
        info: dict[str, np.ndarray],
    ) -> None:
        for index in map(int, np.flatnonzero(dones)):
            info_i = infos[index]
            if game_over[index]:
                assert final_obs is not None
                last = final_obs[index].copy()
                info_i["episode"] = self._game_statistics(index, info)
                info_i["TimeLimit.truncated"] = not bool(terminated[index])
                # ale-py reports the new game's lives; a finished game has none left
                # (a cut-off one keeps what it had)
                info_i["lives"] = 0 if terminated[index] else int(self._lives[index])
            else:
                last = obs[index].copy()  # a lost life: the game goes on in this stack
                info_i["TimeLimit.truncated"] = False
                obs[index, : self.frame_stack - 1] = 0
            if self._age[index] < self.frame_stack - 1:
                last[: self.frame_stack - 1 - self._age[index]] = 0
            info_i["terminal_observation"] = last
            self._age[index] = 0

    def _game_statistics(self, index: int, info: dict[str, np.ndarray]) -> dict[str, Any]:
        """Monitor's {"r", "l", "t"} of the game env `index` just ended, and its file row."""
        # The last step's frames: the frame counter also ran through the new game's no-ops.
        last_step = int(info["frame_number"][index]) - int(self._frame[index])
        last_step -= int(info["episode_frame_number"][index])
        length = int(self._episode_frame[index]) + last_step
        episode = {
            "r": round(float(self._score[index]), 6),
            "l": length,
            "t": round(time.time() - self._t_start, 6),
        }
        self._score[index] = 0.0
        if self._writers:
            self._writers[index].write_row(episode)
        return episode


def _monitor_writers(
    monitor_dir: str | None, n_envs: int, env_id: str, t_start: float, append: bool
) -> list[ResultsWriter]:
    """One `<rank>.monitor.csv` per game, as SB3's make_vec_env names them."""
    if monitor_dir is None:
        return []
    return [
        ResultsWriter(
            os.path.join(monitor_dir, str(rank)),
            header={"t_start": t_start, "env_id": env_id},
            override_existing=not append,
        )
        for rank in range(n_envs)
    ]


def ale_env_kwargs(gym_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The game and C++ env settings of a gym id and the run's env_kwargs; a gym-only
    setting is one clear error."""
    spec_kwargs = gym.spec(gym_id).kwargs
    unsupported = sorted(set(env_kwargs) - set(SUPPORTED_ENV_KWARGS))
    if unsupported:
        raise UserError(
            f"{', '.join(unsupported)}: not supported by vec_env ale "
            f"(it takes {', '.join(SUPPORTED_ENV_KWARGS)}); use vec_env sb3"
        )
    settings = {
        name: spec_kwargs[key] for key, name in SUPPORTED_ENV_KWARGS.items() if key in spec_kwargs
    }
    settings.update({SUPPORTED_ENV_KWARGS[key]: value for key, value in env_kwargs.items()})
    return {"game": str(spec_kwargs["game"]), **settings}
