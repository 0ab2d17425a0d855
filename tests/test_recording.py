"""`--record-every N`: a video of one whole evaluation game every N agent steps, in the run's
videos/ folder, that changes nothing of the training (exact resume holds)."""

from __future__ import annotations

import csv
import itertools
import random
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch as th
import yaml
from PIL import Image

from tests.conftest import wait_for_the_next_second
from zoo.algorithms.model_loading import load_model
from zoo.config.config import build_config
from zoo.envs.stack import make_eval_env
from zoo.results.benchmark import Grid
from zoo.runs.checkpoints import checkpoint_folders
from zoo.runs.videos import forget_videos_after, recorded_steps
from zoo.training.recording import RecordingCallback

Zoo = Callable[..., subprocess.CompletedProcess[str]]

# The RAM of Breakout with a small MLP: real ALE games, and screens to record, in seconds.
# A game is at most 400 frames (100 agent steps), so each video is short.
TINY = [
    "--algo", "dqn", "--env", "Breakout-ram", "--seed", "3", "--n-envs", "2",
    "--set", "buffer_size=2000", "--set", "learning_starts=100", "--set", "eval_episodes=1",
    "--set", "eval_max_frames=400", "--set", "policy_kwargs.net_arch=[32]",
]  # fmt: skip
RUN = Path("dqn") / "Breakout-ramNoFrameskip-v4_1"  # under the log folder


def _evaluations(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "evaluations.csv", newline="") as file:
        return [
            {key: row[key] for key in ("step", "scores", "lengths")} for row in csv.DictReader(file)
        ]


def _recorded(stdout: str) -> dict[int, tuple[float, int]]:
    """step -> (score, frames) of each `step N: recorded ...` line."""
    found = re.findall(r"step ([\d,]+): recorded \S+ \(score (\S+), ([\d,]+) frames\)", stdout)
    return {int(s.replace(",", "")): (float(r), int(f.replace(",", ""))) for s, r, f in found}


@pytest.mark.slow
def test_a_video_of_the_evaluation_game_at_the_first_step_past_each_multiple(
    in_process: Zoo, tmp_path: Path
) -> None:
    # Two envs step 2 agent steps at a time: 75 and 150 are passed at 76 and 150, where the
    # evaluation (eval_freq 75) plays its game of the same seed.
    result = in_process("train", *TINY, "-n", "200", "--set", "eval_freq=75",
                        "--record-every", "75")  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / RUN
    assert sorted(p.name for p in (run_dir / "videos").iterdir()) == [
        "step-000000076.mp4",
        "step-000000150.mp4",
    ]
    assert yaml.safe_load((run_dir / "config.yml").read_text())["record_every"] == 75
    evaluations = _evaluations(run_dir)
    assert [int(row["step"]) for row in evaluations] == [76, 150]
    recorded = _recorded(result.stdout)
    assert sorted(recorded) == [76, 150]
    for row in evaluations:
        step = int(row["step"])
        score, frames = recorded[step]
        assert score == float(row["scores"])  # the recorded game is the evaluation's game
        video = list(imageio.get_reader(run_dir / "videos" / f"step-{step:09d}.mp4").iter_data())
        assert len(video) == frames
        assert video[0].shape == (210, 160, 3) and video[len(video) // 2].std() > 0


def _final_weights(run_dir: Path) -> dict[str, th.Tensor]:
    return load_model(run_dir / "final_model.zip", device="cpu").policy.state_dict()


@pytest.mark.slow
def test_a_resumed_run_that_records_trains_exactly_as_one_that_does_not(
    in_process: Zoo, tmp_path: Path
) -> None:
    common = [*TINY, "--save-freq", "200", "--set", "eval_freq=100"]
    records = ["--record-every", "100", "--set", "record_format=gif"]
    for log_dir, extra in (("plain", []), ("recorded", records)):
        first = in_process("train", *common, *extra, "-n", "200", "--log-dir", log_dir)
        assert first.returncode == 0, first.stderr
        wait_for_the_next_second()
        second = in_process("train", "--resume", str(tmp_path / log_dir / RUN), "-n", "400")
        assert second.returncode == 0, second.stderr
    plain, recorded = tmp_path / "plain" / RUN, tmp_path / "recorded" / RUN
    assert not (plain / "videos").exists()
    # Each step once: the resume does not record again at its checkpoint's step 200.
    assert recorded_steps(recorded / "videos") == [100, 200, 300, 400]
    assert sorted(p.suffix for p in (recorded / "videos").iterdir()) == [".gif"] * 4
    with Image.open(recorded / "videos" / "step-000000300.gif") as gif:
        assert gif.size == (160, 210) and gif.n_frames > 1
    assert _evaluations(recorded) == _evaluations(plain)
    weights = _final_weights(plain)
    assert weights.keys() == _final_weights(recorded).keys()
    assert all(th.equal(weights[k], v) for k, v in _final_weights(recorded).items())

    # Killed after step 400 with its newest checkpoint at 200: the resume records 300 and
    # 400 again, and the videos of the steps it rolls back are gone, a stale one included.
    for step, path in checkpoint_folders(recorded / "checkpoints"):
        if step == 400:
            for file in path.iterdir():
                file.unlink()
            path.rmdir()
    (recorded / "videos" / "step-000000300.gif").write_bytes(b"the rolled-back game")
    (recorded / "videos" / "step-000000350.gif").write_bytes(b"a game of another timeline")
    again = in_process("train", "--resume", str(recorded))
    assert again.returncode == 0, again.stderr
    assert recorded_steps(recorded / "videos") == [100, 200, 300, 400]
    with Image.open(recorded / "videos" / "step-000000300.gif") as gif:
        assert gif.n_frames > 1
    assert all(th.equal(weights[k], v) for k, v in _final_weights(recorded).items())


def test_a_recorded_game_draws_nothing_from_the_rngs_training_uses(tmp_path: Path) -> None:
    from stable_baselines3 import DQN

    config = build_config("dqn", "Breakout-ram", overrides=["eval_epsilon=0.2"])
    settings = config.env_settings()
    model = DQN("MlpPolicy", make_eval_env(config.env, settings, 0, 400), buffer_size=10,
                policy_kwargs={"net_arch": [8]}, seed=1)  # fmt: skip
    recorder = RecordingCallback(
        make_env=lambda seed: make_eval_env(config.env, settings, seed, 400),
        videos_dir=tmp_path / "videos",
        every=100,
        seed=1000,
        eval_epsilon=0.2,  # random actions too: from the game's own generator
        sampled=False,
        video_format="mp4",
        fps=15,
    )
    recorder.init_callback(model)
    recorder.num_timesteps = 300
    random.seed(4)
    np.random.seed(4)
    th.manual_seed(4)
    before = (random.getstate(), np.random.get_state(), th.get_rng_state())
    games = [recorder.record(), recorder.record()]
    after = (random.getstate(), np.random.get_state(), th.get_rng_state())
    assert before[0] == after[0] and th.equal(before[2], after[2])
    assert all(np.array_equal(a, b) for a, b in zip(before[1], after[1], strict=True))
    assert games[0] is not None and games[0] == games[1]  # the step's seed: the same game
    assert games[0].path == tmp_path / "videos" / "step-000000300.mp4"
    assert len(list(imageio.get_reader(games[0].path).iter_data())) == games[0].frames > 1
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["step-000000300.mp4"]


def test_forget_videos_after_keeps_the_steps_up_to_the_checkpoint(tmp_path: Path) -> None:
    for name in ("step-000000100.mp4", "step-000000200.gif", "step-000000300.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    forget_videos_after(tmp_path, 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt",
        "step-000000100.mp4",
        "step-000000200.gif",
    ]
    assert recorded_steps(tmp_path) == [100, 200]
    forget_videos_after(tmp_path / "none", 0)  # no videos folder: nothing to do


def test_bad_record_every_is_one_line_and_exit_2_with_nothing_created(
    in_process: Zoo, tmp_path: Path
) -> None:
    cases = [
        (["--record-every", "1"], "zoo: error: --record-every: key 'record_every': 1 is below "
         "n_envs (2), the agent steps of one step of the envs; give 0 (never) or at least 2"),
        (["--record-every", "-5"], "--record-every: key 'record_every': must be >= 0, got -5"),
        (["--set", "record_format=avi"], "--set record_format=avi: key 'record_format': "),
    ]  # fmt: skip
    for args, message in cases:
        result = in_process("train", *TINY, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    bench = in_process("benchmark", "--algos", "dqn", "--envs", "Breakout-ram",
                       "--set", "n_envs=4", "--record-every", "3", "--quiet")  # fmt: skip
    assert bench.returncode == 2 and bench.stderr.count("\n") == 1, bench.stderr
    assert "3 is below n_envs (4)" in bench.stderr
    resumed = in_process("train", "--resume", "logs/dqn/x_1", "--record-every", "100")
    assert resumed.returncode == 2 and "--record-every cannot be combined" in resumed.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_env_that_cannot_draw_its_frames_is_refused_before_anything_is_created(
    in_process: Zoo, tmp_path: Path
) -> None:
    try:
        import pygame  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pygame is installed: CartPole draws its frames")
    result = in_process("train", "--algo", "dqn", "--env", "CartPole-v1", "--record-every", "100")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("zoo: error: record_every: CartPole-v1 cannot draw its frames")
    assert list(tmp_path.iterdir()) == []


def test_a_benchmark_grid_passes_record_every_to_its_cells() -> None:
    plain = Grid(name="g", algos=("dqn",), envs=("CartPole-v1",), seeds=(0,))
    recorded = Grid(name="g", algos=("dqn",), envs=("CartPole-v1",), seeds=(0,), record_every=500)
    assert "record_every" not in plain.identity()  # grids made before the option stay the same
    assert recorded.identity()["record_every"] == 500
    assert plain.config("dqn", "CartPole-v1", 0).run.record_every == 0
    assert recorded.config("dqn", "CartPole-v1", 0).run.record_every == 500


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:random_state is deprecated:FutureWarning")
def test_a_benchmark_cell_records_its_videos(in_process: Zoo, tmp_path: Path) -> None:
    settings = [value for flag, value in itertools.pairwise(TINY) if flag == "--set"]
    grid = [
        "benchmark", "--algos", "dqn", "--envs", "Breakout-ram", "--seeds", "0", "-n", "200",
        "--eval-games", "1", "--name", "videos", "--quiet",
        *[arg for value in [*settings, "n_envs=2", "eval_freq=0"] for arg in ("--set", value)],
    ]  # fmt: skip
    result = in_process(*grid, "--record-every", "100")
    assert result.returncode == 0, result.stderr
    grid_dir = tmp_path / "logs" / "benchmark" / "videos"
    assert yaml.safe_load((grid_dir / "grid.yml").read_text())["grid"]["record_every"] == 100
    cell = grid_dir / "dqn_Breakout-ramNoFrameskip-v4_seed0"
    assert recorded_steps(cell / "videos") == [100, 200]
    # Another --record-every is another grid: its cells would resume with the saved one.
    again = in_process(*grid, "--record-every", "50", "--report")
    assert again.returncode == 2 and "holds another benchmark grid" in again.stderr
    assert in_process(*grid, "--record-every", "100", "--report").returncode == 0
