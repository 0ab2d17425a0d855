"""Env names and env stacks: "Breakout" -> BreakoutNoFrameskip-v4 -> a preprocessed VecEnv.

Pixel Atari games get SB3's AtariWrapper (no-op starts, skip with max-pooling, life loss
ends an episode, FIRE on reset, 84x84 gray, clipped reward) and VecFrameStack, channel
first (`vec_env` dummy or subproc), or the same preprocessing in ale-py's C++ vector env
(`vec_env: ale`, zoo/envs/ale_vec_env.py). RAM games get the same episode semantics on the 128-byte RAM, with frames skipped
inside ALE (max-pooling bytes of RAM means nothing) and a window of stacked RAM states.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Literal

import ale_py
import gymnasium as gym
from stable_baselines3.common.atari_wrappers import (
    ClipRewardEnv,
    EpisodicLifeEnv,
    FireResetEnv,
    NoopResetEnv,
)
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecTransposeImage,
)

from zoo.core.errors import UserError
from zoo.core.threads import env_threads
from zoo.envs.gym_packages import imported_gym_packages, make_registered
from zoo.envs.monitor_files import first_session_start
from zoo.schema.keys import toolkit_defaults

gym.register_envs(ale_py)
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner on every env

EnvKind = Literal["atari", "atari_ram", "other"]
_ATARI_SUFFIX = "NoFrameskip-v4"


@dataclass(frozen=True)
class EnvSpec:
    """A resolved env: its name as users and run folders know it, and how gymnasium makes it.

    ale-py registers no "-ram" ids; "SpaceInvaders-ramNoFrameskip-v4" is made as
    SpaceInvadersNoFrameskip-v4 with obs_type="ram".
    """

    name: str
    gym_id: str
    kind: EnvKind

    @property
    def is_atari(self) -> bool:
        return self.kind != "other"

    @property
    def folder_name(self) -> str:
        """The name as a run-folder name ("ALE/Breakout-v5" -> "ALE-Breakout-v5")."""
        return self.name.replace("/", "-")

    @property
    def skips_frames_itself(self) -> bool:
        """Ids other than *NoFrameskip-v4 repeat actions inside ALE unless told frameskip=1."""
        return self.is_atari and not self.gym_id.endswith(_ATARI_SUFFIX)

    def make_kwargs(self) -> dict[str, Any]:
        return {"obs_type": "ram"} if self.kind == "atari_ram" else {}


# The Atari preprocessing keys are in a config for Atari games only; other envs ignore them.
_ATARI = toolkit_defaults("atari")


@dataclass(frozen=True)
class EnvSettings:
    """The env part of a resolved config."""

    n_envs: int
    vec_env: str
    frame_stack: int
    noop_max: int = _ATARI["noop_max"]
    frame_skip: int = _ATARI["frame_skip"]
    screen_size: int = _ATARI["screen_size"]
    terminal_on_life_loss: bool = _ATARI["terminal_on_life_loss"]
    clip_reward: bool = _ATARI["clip_reward"]
    env_kwargs: Mapping[str, Any] | None = None
    env_threads: int | None = None  # C++ threads of vec_env ale (None: zoo's choice)

    @classmethod
    def from_hyperparams(cls, hyperparams: Mapping[str, Any]) -> EnvSettings:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in hyperparams.items() if key in names})


@cache
def short_names() -> dict[str, str]:
    """Lower-case short name -> id, for every Atari game ALE ships ("spaceinvaders")."""
    return {
        env_id[: -len(_ATARI_SUFFIX)].lower(): env_id
        for env_id in gym.registry
        if env_id.endswith(_ATARI_SUFFIX) and "/" not in env_id
    }


def atari_game_names() -> list[str]:
    """Short names as users type them ("Breakout"), sorted; each also has a "-ram" form."""
    return sorted(env_id[: -len(_ATARI_SUFFIX)] for env_id in short_names().values())


def resolve_env(name: str) -> EnvSpec:
    """Resolve a short or full, case-insensitive env name; unknown names suggest close ones."""
    key = name.strip().lower()
    wants_ram = "-ram" in key
    gym_id = _lookup(key.replace("-ram", "", 1))
    if gym_id is None:
        raise UserError(_unknown_env_message(name))
    kind = _kind_of(gym_id)
    if wants_ram:
        if kind != "atari":
            raise UserError(f"{name!r}: only Atari games have a -ram variant")
        return EnvSpec(name=_ram_name(gym_id), gym_id=gym_id, kind="atari_ram")
    return EnvSpec(name=gym_id, gym_id=gym_id, kind=kind)


def _lookup(key: str) -> str | None:
    env_id = short_names().get(key)
    if env_id is None:
        env_id = next((i for i in gym.registry if i.lower() == key), None)
    return env_id


def _ram_name(gym_id: str) -> str:
    """Insert "-ram" after the game: BreakoutNoFrameskip-v4 -> Breakout-ramNoFrameskip-v4."""
    if gym_id.endswith(_ATARI_SUFFIX):
        return gym_id[: -len(_ATARI_SUFFIX)] + "-ram" + _ATARI_SUFFIX
    head, _, version = gym_id.rpartition("-")
    return f"{head}-ram-{version}"


def _unknown_env_message(name: str) -> str:
    candidates = {short.lower(): short for short in atari_game_names()}
    candidates.update({f"{short.lower()}-ram": f"{short}-ram" for short in atari_game_names()})
    candidates.update({env_id.lower(): env_id for env_id in gym.registry})
    close = difflib.get_close_matches(name.lower(), list(candidates), n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(candidates[c] for c in close)}? " if close else ""
    # A gymnasium id (Name-v0, pkg:Name-v0) may be one that a package registers: a run of
    # such an env is resumed, played and plotted with the same --gym-packages.
    if re.search(r"-v\d+$", name.strip()):
        hint += "if a package registers it, add --gym-packages PKG; "
    return f"unknown env {name!r}: {hint}(`zoo envs` lists the Atari games)"


def _kind_of(gym_id: str) -> EnvKind:
    spec = gym.spec(gym_id)
    if "ale_py" not in str(spec.entry_point):
        return "other"
    return "atari_ram" if spec.kwargs.get("obs_type") == "ram" else "atari"


def env_error(spec: EnvSpec, error: BaseException) -> UserError:
    """One line for any failure to construct the env (a registered entry point whose module
    is missing, a simulator that fails to start, ...), wherever it is first made."""
    if isinstance(error, UserError):
        return error
    text = str(error).strip().splitlines()
    return UserError(
        f"cannot create env {spec.name}: {type(error).__name__}{': ' + text[0] if text else ''}"
    )


def make_env(spec: EnvSpec, **kwargs: Any) -> gym.Env[Any, Any]:
    """gym.make of the env, any failure to construct it as one line (env_error)."""
    try:
        return gym.make(spec.gym_id, **kwargs)
    except Exception as error:  # whatever the env's own code raises
        raise env_error(spec, error) from None


@cache
def has_image_observations(spec: EnvSpec) -> bool:
    """Whether the env observes images, which SB3's CnnPolicy takes (Atari pixel games, and
    other envs whose observation space SB3 calls an image)."""
    if spec.kind != "other":
        return spec.kind == "atari"
    from stable_baselines3.common.preprocessing import is_image_space

    try:
        env = gym.make(spec.gym_id)
    except Exception:  # an env that cannot be made here says so when it is built
        return False
    try:
        return is_image_space(env.observation_space, check_channels=False)
    finally:
        env.close()


def make_vec_env_for(
    spec: EnvSpec,
    settings: EnvSettings,
    seed: int | None,
    monitor_dir: str | None = None,
    append_monitor: bool = False,
) -> VecEnv:
    """Build the training VecEnv described by `settings`, seeded and monitored.

    `append_monitor` adds rows to existing monitor files (a resumed run) instead of
    starting them over.
    """
    if settings.vec_env == "ale":
        return _ale_atari(spec, settings, seed, monitor_dir, append_monitor)
    env = _sb3_vec_env(spec, settings, seed, monitor_dir, append_monitor)
    if monitor_dir is not None and append_monitor:
        _continue_monitor_clocks(env, monitor_dir)
    return env


def _continue_monitor_clocks(env: VecEnv, monitor_dir: str) -> None:
    """SB3's Monitor starts its clock anew when it appends to a file; a resumed session's
    `t` goes on from the run's first start instead (see first_session_start)."""
    for rank in range(env.num_envs):
        t_start = first_session_start(monitor_dir, rank)
        if t_start is not None:  # set on the Monitor, under the wrappers above it
            env.env_method("set_wrapper_attr", "t_start", t_start, indices=[rank])


def _sb3_vec_env(
    spec: EnvSpec,
    settings: EnvSettings,
    seed: int | None,
    monitor_dir: str | None,
    append_monitor: bool,
) -> VecEnv:
    monitor_kwargs = {"override_existing": not append_monitor}
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] = (
        SubprocVecEnv if settings.vec_env == "subproc" else DummyVecEnv
    )
    env_kwargs = {**spec.make_kwargs(), **(settings.env_kwargs or {})}
    if "frameskip" in env_kwargs:
        raise UserError("env_kwargs.frameskip is not allowed: set frame_skip instead")
    try:
        if spec.kind == "atari":
            return _pixel_atari(
                spec, settings, seed, monitor_dir, monitor_kwargs, env_kwargs, vec_env_cls
            )
        if spec.kind == "atari_ram":
            return _ram_atari(
                spec, settings, seed, monitor_dir, monitor_kwargs, env_kwargs, vec_env_cls
            )
        packages = imported_gym_packages()
        env = make_vec_env(
            partial(make_registered, spec.gym_id, packages) if packages else spec.gym_id,
            n_envs=settings.n_envs,
            seed=seed,
            monitor_dir=monitor_dir,
            monitor_kwargs=monitor_kwargs,
            env_kwargs=env_kwargs,
            vec_env_cls=vec_env_cls,
        )
    except Exception as error:  # whatever the env's own code raises
        raise env_error(spec, error) from None
    env = VecFrameStack(env, settings.frame_stack) if settings.frame_stack > 1 else env
    return _channel_first(env)


def _channel_first(env: VecEnv) -> VecEnv:
    """Images channel-first, as for Atari games (and as SB3 itself would wrap them for
    training): evaluation and `zoo enjoy` then feed the model what it was trained on."""
    from stable_baselines3.common.preprocessing import (
        is_image_space,
        is_image_space_channels_first,
    )

    space = env.observation_space
    if is_image_space(space) and not is_image_space_channels_first(space):  # type: ignore[arg-type]
        return VecTransposeImage(env)
    return env


def make_eval_env(
    spec: EnvSpec,
    settings: EnvSettings,
    seed: int,
    max_frames: int,
    render_mode: str | None = None,
) -> VecEnv:
    """One env with the training preprocessing whose Monitor counts whole games, capped at
    `max_frames` emulator frames (agent steps for non-Atari envs without a time limit), by
    ALE itself as well as by a TimeLimit, whatever `env_kwargs` caps training games at.
    `render_mode="human"` shows the game in a window."""
    env_kwargs = dict(settings.env_kwargs or {})
    if render_mode is not None:
        env_kwargs["render_mode"] = render_mode
    if spec.is_atari:  # ALE's own cap (108,000 frames unless told) would end longer games
        env_kwargs["max_num_frames_per_episode"] = max_frames
    if spec.kind == "atari":
        env_kwargs["max_episode_steps"] = max_frames  # the base env steps one frame at a time
    elif spec.kind == "atari_ram":
        env_kwargs["max_episode_steps"] = math.ceil(max_frames / settings.frame_skip)
    elif gym.spec(spec.gym_id).max_episode_steps is None:
        env_kwargs["max_episode_steps"] = max_frames
    eval_settings = dataclasses.replace(settings, n_envs=1, vec_env="dummy", env_kwargs=env_kwargs)
    return make_vec_env_for(spec, eval_settings, seed)


def _pixel_atari(
    spec: EnvSpec,
    settings: EnvSettings,
    seed: int | None,
    monitor_dir: str | None,
    monitor_kwargs: dict[str, Any],
    env_kwargs: dict[str, Any],
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv],
) -> VecEnv:
    if spec.skips_frames_itself:
        env_kwargs["frameskip"] = 1  # AtariWrapper skips; ALE must not skip again
    env = make_atari_env(
        spec.gym_id,
        n_envs=settings.n_envs,
        seed=seed,
        monitor_dir=monitor_dir,
        monitor_kwargs=monitor_kwargs,
        wrapper_kwargs={
            "noop_max": settings.noop_max,
            "frame_skip": settings.frame_skip,
            "screen_size": settings.screen_size,
            "terminal_on_life_loss": settings.terminal_on_life_loss,
            "clip_reward": settings.clip_reward,
        },
        env_kwargs=env_kwargs,
        vec_env_cls=vec_env_cls,
    )
    env = VecFrameStack(env, n_stack=settings.frame_stack)
    return VecTransposeImage(env)  # channel-first, as PyTorch convolutions expect


def _ale_atari(
    spec: EnvSpec,
    settings: EnvSettings,
    seed: int | None,
    monitor_dir: str | None,
    append_monitor: bool,
) -> VecEnv:
    from zoo.envs.ale_vec_env import AleVecEnv, ale_env_kwargs, ale_vector_available

    if spec.kind != "atari":
        raise UserError(
            f"vec_env ale runs Atari pixel games only; {spec.name} needs vec_env dummy or subproc"
        )
    if not ale_vector_available():
        raise UserError(
            f"vec_env ale needs ale-py >= 0.11 (installed: {ale_py.__version__}); "
            "upgrade it or use --vec-env sb3"
        )
    env_kwargs = dict(settings.env_kwargs or {})
    if "frameskip" in env_kwargs:
        raise UserError("env_kwargs.frameskip is not allowed: set frame_skip instead")
    kwargs = ale_env_kwargs(spec.gym_id, env_kwargs)
    env = AleVecEnv(
        kwargs.pop("game"),
        settings.n_envs,
        env_id=spec.gym_id,
        frame_skip=settings.frame_skip,
        noop_max=settings.noop_max,
        screen_size=settings.screen_size,
        frame_stack=settings.frame_stack,
        terminal_on_life_loss=settings.terminal_on_life_loss,
        clip_reward=settings.clip_reward,
        threads=env_threads(settings.env_threads, settings.n_envs),
        monitor_dir=monitor_dir,
        append_monitor=append_monitor,
        **kwargs,
    )
    if seed is not None:
        env.seed(seed)
    return env


def _ram_atari(
    spec: EnvSpec,
    settings: EnvSettings,
    seed: int | None,
    monitor_dir: str | None,
    monitor_kwargs: dict[str, Any],
    env_kwargs: dict[str, Any],
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv],
) -> VecEnv:
    env_kwargs["frameskip"] = settings.frame_skip  # ALE repeats the action and sums rewards
    env = make_vec_env(
        partial(gym.make, spec.gym_id),
        n_envs=settings.n_envs,
        seed=seed,
        monitor_dir=monitor_dir,
        monitor_kwargs=monitor_kwargs,
        wrapper_class=_ram_wrapper(settings),
        env_kwargs=env_kwargs,
        vec_env_cls=vec_env_cls,
    )
    return VecFrameStack(env, n_stack=settings.frame_stack) if settings.frame_stack > 1 else env


def _ram_wrapper(settings: EnvSettings) -> Callable[[gym.Env], gym.Env]:
    # No-op starts are counted in agent steps here, since ALE already skips frames.
    noop_steps = math.ceil(settings.noop_max / settings.frame_skip)

    def wrap(env: gym.Env) -> gym.Env:
        if noop_steps > 0:
            env = NoopResetEnv(env, noop_max=noop_steps)
        if settings.terminal_on_life_loss:
            env = EpisodicLifeEnv(env)
        if "FIRE" in env.unwrapped.get_action_meanings():  # type: ignore[attr-defined]
            env = FireResetEnv(env)
        if settings.clip_reward:
            env = ClipRewardEnv(env)
        return env

    return wrap


def game_of(env_name: str) -> str:
    """BreakoutNoFrameskip-v4, ALE/Breakout-v5, Breakout-ramNoFrameskip-v4 -> Breakout."""
    name = env_name.split("/")[-1]
    name = name.replace("-ram", "")
    name = re.sub(r"(NoFrameskip)?-v\d+$", "", name)
    return name
