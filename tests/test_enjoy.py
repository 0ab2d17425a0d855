"""`zoo enjoy` on a model from a real short Breakout run: scores, videos, bad inputs."""

from __future__ import annotations

import errno
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image, ImageSequence
from stable_baselines3.common.monitor import Monitor

from tests.conftest import SHORT_DQN, run_in_process, run_zoo
from zoo.algorithms.model_loading import load_model
from zoo.envs.stack import make_eval_env
from zoo.results.enjoy import ChosenModel, choose_model, run_config
from zoo.runs.evaluation import play_evaluation_games
from zoo.runs.folders import open_run

Zoo = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short real DQN run on Breakout with a best, a final model and checkpoints."""
    root = tmp_path_factory.mktemp("enjoy")
    result = run_in_process(
        ["train", "--algo", "dqn", "--env", "Breakout", "-n", "400", "--seed", "0", "--quiet",
         "--preset", "sb3_benchmark", *SHORT_DQN, "--set", "eval_freq=400",
         "--set", "eval_episodes=1"],
        root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root


def _scores(stdout: str) -> list[float]:
    return [float(score) for score in re.findall(r"game \d+: score (\S+)", stdout)]


def _raw_reward_sums(run_dir: Path, seed: int, episodes: int) -> list[float]:
    """The same games replayed in-process, scored by summing the raw emulator rewards."""
    chosen = choose_model(open_run(run_dir), "best")
    config = run_config(chosen.run)
    env = make_eval_env(config.env, config.env_settings(), seed, 108_000)
    monitor: Any = env.envs[0]
    while not isinstance(monitor, Monitor):
        monitor = monitor.env
    raw_game = monitor.env  # the emulator under every wrapper, with its time limit
    raw_step = raw_game.step
    sums: list[float] = []
    running = [0.0]

    def summing_step(action: Any) -> Any:
        observation, reward, terminated, truncated, info = raw_step(action)
        running[0] += float(reward)
        if terminated or truncated:  # game over (all lives lost) or the time limit
            sums.append(running[0])
            running[0] = 0.0
        return observation, reward, terminated, truncated, info

    raw_game.step = summing_step
    model = load_model(chosen.path, device="cpu")
    play_evaluation_games(model, env, episodes, 0.0, seed)
    env.close()
    return sums


@pytest.mark.slow
def test_enjoy_prints_full_game_scores_of_the_raw_game(trained: Path) -> None:
    result = run_zoo(["enjoy", "--algo", "dqn", "--env", "Breakout", "--no-render",
                      "--episodes", "2", "--seed", "4"], trained)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Playing the best model" in result.stdout
    scores = _scores(result.stdout)
    run_dir = trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    assert scores == _raw_reward_sums(run_dir, seed=4, episodes=2)
    assert "2 games: mean" in result.stdout


def _recorded(stdout: str) -> int:
    return int(re.findall(r"Recorded ([\d,]+) frames", stdout)[0].replace(",", ""))


@pytest.mark.slow
def test_record_mp4_holds_the_colour_screen_of_every_step(trained: Path) -> None:
    video = trained / "play.mp4"
    result = run_in_process(["enjoy", "--algo", "dqn", "--env", "Breakout", "--model", "final",
                      "--episodes", "1", "--record", str(video), "--fps", "30"], trained)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # iter_data: the mp4 reader reports an unknown (infinite) length, which list() cannot size
    frames = list(imageio.get_reader(video).iter_data())
    assert len(frames) == _recorded(result.stdout) > 50
    assert frames[0].shape[:2] == (210, 160)  # the emulator screen, not the 84x84 input
    assert frames[len(frames) // 2].std() > 0  # a picture, not a blank


@pytest.mark.slow
def test_record_gif_plays_every_step_for_its_frame_time(trained: Path) -> None:
    video = trained / "play.gif"
    result = run_in_process(["enjoy", "--algo", "dqn", "--env", "Breakout", "--model", "final",
                      "--episodes", "1", "--record", str(video), "--fps", "25"], trained)  # fmt: skip
    assert result.returncode == 0, result.stderr
    recorded = _recorded(result.stdout)
    durations: list[int] = []
    with Image.open(video) as gif:
        assert gif.size == (160, 210)
        for frame in ImageSequence.Iterator(gif):
            durations.append(int(frame.info["duration"]))
            if len(durations) == 20:
                assert np.asarray(frame.convert("RGB")).std() > 0
    # GIF merges a repeated frame into the previous one, adding its time: the total time is exact
    assert len(durations) <= recorded and sum(durations) == recorded * 40


def test_enjoy_bad_inputs_are_one_line_and_exit_2(trained: Path, tmp_path: Path) -> None:
    run_dir = trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    corrupt_run = tmp_path / "corrupt"
    corrupt_run.mkdir()
    for name in ("run.yml", "config.yml"):
        (corrupt_run / name).write_bytes((run_dir / name).read_bytes())
    (corrupt_run / "final_model.zip").write_bytes(b"not a zip")
    cases = [
        (["--algo", "dqn", "--env", "Pong"], "no dqn run of PongNoFrameskip-v4 in logs; runs found: "
         "dqn/BreakoutNoFrameskip-v4_1; train one with: zoo train --algo dqn --env Pong"),
        (["--algo", "dqn", "--env", "Breakout", "--exp-id", "7"], "no run logs/dqn/Breakout"),
        (["--run", str(tmp_path / "nowhere")], "no such run folder"),
        (["--run", str(corrupt_run), "--model", "best"], "has no best model yet"),
        (["--run", str(corrupt_run), "--model", "final", "--no-render"], "not a readable model zip"),
        (["--algo", "dqn", "--env", "Breakout", "--record", "x.avi"], "give a .mp4 or .gif"),
    ]  # fmt: skip
    for args, message in cases:
        result = run_in_process(["enjoy", *args], trained)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_model_choice_falls_back_from_best_to_final_to_checkpoint(trained: Path) -> None:
    run = open_run(trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1")
    assert choose_model(run, None).kind == "best"
    assert choose_model(run, "checkpoint").path.name == "model.zip"
    assert isinstance(choose_model(run, "final"), ChosenModel)


def test_range_errors_name_the_option(in_process: Zoo) -> None:
    cases = [
        (["--episodes", "0"], "--episodes 0: give 1 or more games"),
        (["--epsilon", "2"], "--epsilon 2: give a random-action rate in [0, 1]"),
        (["--fps", "0"], "--fps 0: give 1 to 240 video frames per second"),
    ]
    for args, message in cases:
        result = in_process("enjoy", "--algo", "dqn", "--env", "Breakout", *args)
        assert result.returncode == 2 and result.stderr == f"zoo: error: {message}\n"


def test_record_onto_a_folder_or_under_a_file_is_refused_before_playing(
    in_process: Zoo, tmp_path: Path
) -> None:
    (tmp_path / "x.mp4").mkdir()
    (tmp_path / "notes").write_text("mine\n")
    cases = [
        ("x.mp4", "--record x.mp4: that is a folder; give the video another file name"),
        ("notes/play.gif", "--record notes/play.gif: notes is a file, not a folder"),
        ("notes/deeper/play.mp4", "notes is a file, not a folder"),
    ]
    for target, message in cases:
        result = in_process("enjoy", "--algo", "dqn", "--env", "Breakout", "--record", target)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
        assert result.stdout == ""  # refused before looking for a run or playing
    assert (tmp_path / "notes").read_text() == "mine\n" and list(
        (tmp_path / "x.mp4").iterdir()
    ) == []


@pytest.fixture
def unwritable_folder() -> Path:
    """A folder where even root cannot create a file (tests run as root, whom chmod does not
    stop): sysfs on Linux."""
    folder = Path("/sys")
    try:
        (folder / "zoo-probe").touch()
    except OSError:
        return folder
    (folder / "zoo-probe").unlink()
    pytest.skip("no folder here refuses new files")


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_record_into_a_folder_that_cannot_be_written_is_one_line(
    trained: Path, in_process: Zoo, unwritable_folder: Path, suffix: str
) -> None:
    run_dir = trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    target = unwritable_folder / f"zoo-play{suffix}"
    result = in_process("enjoy", "--run", str(run_dir), "--no-render", "--record", str(target))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"zoo: error: --record {target}: cannot write")
    assert "game 1" not in result.stdout  # refused before any game
    assert not target.exists()


class _DiskFullWriter:
    """A video writer whose disk fills up at the fifth frame."""

    def __init__(self) -> None:
        self.frames = 0

    def append_data(self, frame: np.ndarray) -> None:
        self.frames += 1
        if self.frames == 5:
            raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_a_recording_that_fails_keeps_the_video_already_there(
    trained: Path, in_process: Zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setattr(imageio, "get_writer", lambda *args, **kwargs: _DiskFullWriter())
    video = tmp_path / f"play{suffix}"
    video.write_bytes(b"yesterday's video")
    run_dir = trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    result = in_process("enjoy", "--run", str(run_dir), "--no-render", "--record", video.name)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"zoo: error: --record {video.name}: writing the video failed (No space left on device) "
        "(the video already there is kept)\n"
    )
    assert video.read_bytes() == b"yesterday's video"
    assert sorted(path.name for path in tmp_path.iterdir()) == [video.name]  # no partial file


def test_a_model_that_is_not_the_runs_or_a_flag_it_contradicts_is_refused(
    trained: Path, in_process: Zoo, tmp_path: Path
) -> None:
    from stable_baselines3 import A2C, DQN

    source = trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    run_dir = tmp_path / "copy"
    run_dir.mkdir()
    for name in ("run.yml", "config.yml"):
        (run_dir / name).write_bytes((source / name).read_bytes())
    A2C("MlpPolicy", "CartPole-v1").save(run_dir / "best_model.zip")
    DQN("MlpPolicy", "CartPole-v1", buffer_size=100).save(run_dir / "final_model.zip")
    cases = [
        ([str(run_dir)], f"{run_dir}/best_model.zip is a model of a2c, but "
         f"{run_dir} is a run of dqn; that zip does not belong to this run"),
        ([str(run_dir), "--model", "final"], f"{run_dir}/final_model.zip was trained with observations "
         f"float32 (4,), but {run_dir} (BreakoutNoFrameskip-v4) has observations uint8 (4, 84, 84): "
         "it is a model of another game or env"),
        ([str(source), "--algo", "a2c"], f"--algo a2c: {source} is a run of dqn; leave out --algo "
         "with --run"),
        ([str(source), "--env", "Pong"], f"--env Pong: {source} plays BreakoutNoFrameskip-v4; "
         "leave out --env with --run"),
    ]  # fmt: skip
    for args, message in cases:
        result = in_process("enjoy", "--run", *args, "--no-render", "--episodes", "1")
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"zoo: error: {message}\n"
        assert "game 1" not in result.stdout


class SixActionGame(gym.Env[np.ndarray, int]):
    """Pong's spaces: stacked 84x84 frames and 6 actions."""

    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = gym.spaces.Discrete(6)


def test_a_model_of_another_game_is_refused_before_the_first_step(
    trained: Path, in_process: Zoo, tmp_path: Path
) -> None:
    from stable_baselines3 import DQN
    from stable_baselines3.common.vec_env import DummyVecEnv

    pong_like = tmp_path / "pong_model.zip"
    DQN("CnnPolicy", DummyVecEnv([SixActionGame]), buffer_size=10).save(pong_like)
    source = trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    run_dir = tmp_path / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    run_dir.mkdir(parents=True)
    for name in ("run.yml", "config.yml"):
        (run_dir / name).write_bytes((source / name).read_bytes())
    (run_dir / "best_model.zip").write_bytes(pong_like.read_bytes())
    expected = "was trained with 6 actions, but {} has 4 actions: it is a model of another game"
    for args, where in [
        (["--model", str(pong_like), "--env", "Breakout"], "BreakoutNoFrameskip-v4"),
        (["--run", str(run_dir)], f"{run_dir} (BreakoutNoFrameskip-v4)"),
    ]:
        result = in_process("enjoy", *args, "--no-render", "--episodes", "1")
        assert result.returncode == 2, result.stderr
        assert expected.format(where) in result.stderr and result.stderr.count("\n") == 1
    report = in_process("report", "--log-dir", str(tmp_path / "logs"), "--episodes", "1")
    assert "Traceback" not in report.stderr and "was trained with 6 actions" in report.stderr

    # Spaces that fit, but the zip names the game it was built for: said in a note.
    model = load_model(source / "final_model.zip", device="cpu")
    model.trained_on = "ZooTestGame-v0"  # type: ignore[attr-defined]
    model.save(run_dir / "best_model.zip")
    result = in_process("enjoy", "--run", str(run_dir), "--no-render", "--episodes", "1")
    assert result.returncode == 0, result.stderr
    assert "was trained on ZooTestGame-v0; it plays BreakoutNoFrameskip-v4 here" in result.stdout
