"""Videos of whole games: `zoo enjoy --record` and a run's `record_every` videos.

A video holds the colour screen a person sees (not the 84x84 network input), one frame per
agent step, and is written under a temporary name and renamed once complete. During training
one evaluation game is recorded every `record_every` agent steps into `<run>/videos/`, on an
env of its own, with the seed of that step's first evaluation game.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from zoo.core.atomic import partial_name
from zoo.core.errors import UserError
from zoo.envs.stack import EnvSettings, EnvSpec, make_eval_env
from zoo.runs.acting import ActionChooser, GameMemory

VIDEO_SUFFIXES = (".mp4", ".gif")
# An Atari agent acts every frame_skip emulator frames, 60 of them a second.
_ATARI_FRAMES_PER_SECOND = 60
_OTHER_ENVS_FPS = 30
_STEP_FILE = re.compile(r"step-(\d+)\.(mp4|gif)")


class VideoFile:
    """A video written under a temporary name and renamed over `path` once complete: a
    failed recording leaves no broken file and keeps a video that was already there.
    `label` starts its error messages (by default `--record PATH`)."""

    def __init__(self, path: Path, fps: int, label: str | None = None) -> None:
        self.path = path
        self.label = label if label is not None else f"--record {path}"
        self.partial = partial_name(path)
        self.frames = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The encoders open their file only at the first frame or at the end: a folder
            # that cannot be written fails here, before any game is played.
            self.partial.touch()
            self.writer = _video_writer(self.partial, fps)
        except OSError as error:
            with contextlib.suppress(OSError):
                self.partial.unlink(missing_ok=True)
            raise UserError(f"{self.label}: cannot write there ({_reason(error)})") from None

    def append(self, frame: np.ndarray) -> None:
        try:
            self.writer.append_data(frame)
        except OSError as error:
            self.discard()
            raise self._failed(error) from None
        self.frames += 1

    def finish(self) -> None:
        try:
            self.writer.close()
            os.replace(self.partial, self.path)
        except OSError as error:
            self.discard()
            raise self._failed(error) from None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.close()
        with contextlib.suppress(OSError):
            self.partial.unlink(missing_ok=True)

    def _failed(self, error: OSError) -> UserError:
        kept = " (the video already there is kept)" if self.path.is_file() else ""
        return UserError(f"{self.label}: writing the video failed ({_reason(error)}){kept}")


def _reason(error: OSError) -> str:
    text = error.strerror or (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "Broken pipe" in text:  # imageio's word for an ffmpeg that stopped
        return "the ffmpeg encoder stopped: is the disk full or the folder read-only?"
    return text


def _video_writer(path: Path, fps: int) -> Any:
    import imageio.v2 as imageio

    if path.suffix.lower() == ".gif":
        return imageio.get_writer(path, mode="I", duration=1000 / fps, loop=0)
    # imageio-ffmpeg brings its own ffmpeg binary; 210x160 needs no resizing for H.264.
    # ffmpeg stays quiet: a failure is reported in one line here.
    return imageio.get_writer(
        path, fps=fps, macro_block_size=2, quality=7, ffmpeg_log_level="quiet"
    )


def screen(env: Any) -> np.ndarray:
    """The colour screen of the (single) game as a person sees it, not the network input."""
    game = env.envs[0].unwrapped
    if hasattr(game, "ale"):
        return np.asarray(game.ale.getScreenRGB())
    return np.asarray(game.render())


def recording_render_mode(spec: EnvSpec) -> str | None:
    """Atari screens come from ALE itself; other envs draw their frames only when asked to."""
    return None if spec.is_atari else "rgb_array"


def real_time_fps(spec: EnvSpec, settings: EnvSettings) -> int:
    if spec.is_atari:
        return max(1, round(_ATARI_FRAMES_PER_SECOND / settings.frame_skip))
    return _OTHER_ENVS_FPS


def check_recordable(spec: EnvSpec, settings: EnvSettings) -> None:
    """Refuse, before training, an env whose frames cannot be drawn (a classic-control env
    without pygame); Atari screens always can."""
    if spec.is_atari:
        return
    env = None
    try:
        env = make_eval_env(spec, settings, 0, 1, recording_render_mode(spec))
        env.reset()
        frame = screen(env)
    except Exception as error:  # gymnasium's DependencyNotInstalled, a render that fails
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(
            f"record_every: {spec.name} cannot draw its frames ({first}); install what it "
            "names, or leave out --record-every"
        ) from None
    finally:
        if env is not None:
            env.close()
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise UserError(f"record_every: {spec.name} draws no colour frames to record")


def video_path(videos_dir: Path, step: int, video_format: str) -> Path:
    return videos_dir / f"step-{step:09d}.{video_format}"


def recorded_steps(videos_dir: Path) -> list[int]:
    """The steps of the complete videos in `videos_dir`, in order."""
    if not videos_dir.is_dir():
        return []
    found = (_STEP_FILE.fullmatch(path.name) for path in videos_dir.iterdir())
    return sorted(int(match.group(1)) for match in found if match is not None)


def forget_videos_after(videos_dir: Path, step: int) -> None:
    """Remove the videos of steps after `step`: a resumed run continues from its checkpoint
    there and records those steps again, as it evaluates them again."""
    if not videos_dir.is_dir():
        return
    for path in videos_dir.iterdir():
        match = _STEP_FILE.fullmatch(path.name)
        if match is not None and int(match.group(1)) > step:
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class RecordedGame:
    path: Path
    score: float
    frames: int  # video frames: the screen at the start and after every agent step


class RecordingCancelled(Exception):
    """A stop request during a recorded game: the game is abandoned, no video is written."""


def record_game(
    env: VecEnv,
    chooser: ActionChooser,
    seed: int,
    video: VideoFile,
    cancelled: Callable[[], bool] = lambda: False,
) -> RecordedGame:
    """Play one whole game on `env` (a fresh single-game evaluation env), as an evaluation
    plays it with `seed`, writing its screen to `video`; the env is closed at the end."""
    rng = np.random.default_rng(seed)  # as GameTable: the game's own random numbers
    memory = GameMemory()  # and, for a recurrent policy, its own LSTM state
    try:
        observation = np.asarray(env.reset())
        video.append(screen(env))
        while True:
            if cancelled():
                raise RecordingCancelled
            action = chooser(observation, [rng], [memory])
            stepped, _, dones, infos = env.step(np.asarray(action))
            observation = np.asarray(stepped)
            memory.episode_start = bool(dones[0])
            episode = infos[0].get("episode")
            if episode is not None:  # the env has reset already: its screen is a new game
                break
            video.append(screen(env))
    except BaseException:
        video.discard()
        raise
    finally:
        env.close()
    video.finish()
    return RecordedGame(video.path, float(episode["r"]), video.frames)
