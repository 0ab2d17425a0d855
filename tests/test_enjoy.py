"""`zoo enjoy` on a model from a real short Breakout run: scores, videos, bad inputs."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image, ImageSequence
from stable_baselines3.common.monitor import Monitor

from tests.conftest import SHORT_DQN, run_zoo
from zoo.enjoy import ChosenModel, choose_model, run_config
from zoo.envs import make_eval_env
from zoo.evaluation import play_evaluation_games
from zoo.models import load_model
from zoo.runs import open_run

Zoo = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short real DQN run on Breakout with a best, a final model and checkpoints."""
    root = tmp_path_factory.mktemp("enjoy")
    result = run_zoo(
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


def test_record_mp4_holds_the_colour_screen_of_every_step(trained: Path) -> None:
    video = trained / "play.mp4"
    result = run_zoo(["enjoy", "--algo", "dqn", "--env", "Breakout", "--model", "final",
                      "--episodes", "1", "--record", str(video), "--fps", "30"], trained)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # iter_data: the mp4 reader reports an unknown (infinite) length, which list() cannot size
    frames = list(imageio.get_reader(video).iter_data())
    assert len(frames) == _recorded(result.stdout) > 50
    assert frames[0].shape[:2] == (210, 160)  # the emulator screen, not the 84x84 input
    assert frames[len(frames) // 2].std() > 0  # a picture, not a blank


def test_record_gif_plays_every_step_for_its_frame_time(trained: Path) -> None:
    video = trained / "play.gif"
    result = run_zoo(["enjoy", "--algo", "dqn", "--env", "Breakout", "--model", "final",
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
        result = run_zoo(["enjoy", *args], trained)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_model_choice_falls_back_from_best_to_final_to_checkpoint(trained: Path) -> None:
    run = open_run(trained / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1")
    assert choose_model(run, None).kind == "best"
    assert choose_model(run, "checkpoint").path.name == "model.zip"
    assert isinstance(choose_model(run, "final"), ChosenModel)
