from __future__ import annotations

import csv
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stable_baselines3.common.logger import configure

from tests.conftest import SHORT_DQN
from zoo.config.config import build_config
from zoo.config.layers import load_presets
from zoo.core.errors import UserError
from zoo.results.schedule_plot import EPSILON_COLOR, LEARNING_RATE_COLOR, VALUE_CLIP_RANGE_COLOR
from zoo.runs.folders import start_run
from zoo.schema.schedules import ScheduleError, build_schedule
from zoo.training.train import TrainOptions, train


def test_constant() -> None:
    assert build_schedule(0.05, 100).value(0) == 0.05
    assert build_schedule({"type": "constant", "value": 0.05}, 100).value(10**9) == 0.05


def test_linear_over_steps_and_fraction() -> None:
    schedule = build_schedule(
        {"type": "linear", "initial": 1.0, "final": 0.1, "steps": 1_000_000}, 10**7
    )
    assert schedule.value(0) == 1.0
    assert schedule.value(500_000) == pytest.approx(0.55)
    assert schedule.value(1_000_000) == pytest.approx(0.1)
    assert schedule.value(5_000_000) == pytest.approx(0.1)
    # fraction of the run; default is the whole run
    assert build_schedule(
        {"type": "linear", "initial": 1.0, "final": 0.0, "fraction": 0.1}, 1000
    ).value(50) == pytest.approx(0.5)
    lr = build_schedule({"type": "linear", "initial": 7e-4, "final": 0.0}, 1000)
    assert lr.value(250) == pytest.approx(5.25e-4) and lr.value(1000) == 0.0


def test_exponential_with_random_phase() -> None:
    spec = {
        "type": "exponential",
        "initial": 1.0,
        "final": 0.05,
        "tau": 250_000,
        "random_steps": 50_000,
    }
    schedule = build_schedule(spec, 10**7, exploration=True)
    assert schedule.value(0) == 1.0 and schedule.value(49_999) == 1.0  # purely random
    assert schedule.value(50_000) == pytest.approx(1.0)
    assert schedule.value(300_000) == pytest.approx(0.05 + 0.95 * math.exp(-1))
    five_tau = schedule.value(50_000 + 5 * 250_000)
    assert five_tau == pytest.approx(0.05 + 0.95 * math.exp(-5))
    assert abs(five_tau - 0.05) < 0.01 * (1.0 - 0.05)  # within 1% of the way to final
    assert schedule.settled_at == 1_300_000


def test_exponential_initial_below_one_jumps_after_random_phase() -> None:
    schedule = build_schedule(
        {"type": "exponential", "initial": 0.5, "final": 0.1, "tau": 10, "random_steps": 20},
        100,
        exploration=True,
    )
    assert schedule.value(19) == 1.0 and schedule.value(20) == pytest.approx(0.5)


def test_episode_unit_and_linear_random_phase() -> None:
    spec = {
        "type": "linear",
        "initial": 1.0,
        "final": 0.1,
        "steps": 100,
        "random_steps": 10,
        "unit": "episodes",
    }
    schedule = build_schedule(spec, 10**6, exploration=True)
    assert schedule.unit == "episodes"
    assert schedule.value(5) == 1.0
    assert schedule.value(60) == pytest.approx(0.55)  # decays start after the random phase
    assert schedule.value(110) == pytest.approx(0.1)


def test_piecewise_edges() -> None:
    schedule = build_schedule(
        {"type": "piecewise", "points": [[100, 1.0], [200, 0.5], [400, 0.1]]}, 1000
    )
    assert schedule.value(0) == 1.0  # before the first point: its value
    assert schedule.value(100) == 1.0
    assert schedule.value(150) == pytest.approx(0.75)
    assert schedule.value(200) == pytest.approx(0.5)
    assert schedule.value(300) == pytest.approx(0.3)
    assert schedule.value(400) == pytest.approx(0.1)
    assert schedule.value(10**6) == pytest.approx(0.1)  # after the last point: its value
    single = build_schedule({"type": "piecewise", "points": [[0, 0.3]]}, 1000)
    assert single.value(0) == single.value(999) == 0.3


def test_step_decay() -> None:
    schedule = build_schedule(
        {"type": "step", "initial": 1e-3, "factor": 0.5, "every": 100, "final": 2e-4}, 1000
    )
    assert [schedule.value(t) for t in (0, 99, 100, 250, 10_000)] == pytest.approx(
        [1e-3, 1e-3, 5e-4, 2.5e-4, 2e-4]
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "cosine"}, "unknown schedule type 'cosine'"),
        ({"type": "linear", "initial": 1.0}, "linear schedule needs final"),
        (
            {"type": "linear", "initial": 0.1, "final": 1.0},
            "final (1) is larger than initial (0.1)",
        ),
        ({"type": "exponential", "initial": 1.0, "final": 0.1, "tau": -5}, "tau must be > 0"),
        (
            {"type": "linear", "initial": 1.0, "final": 0.1, "steps": 5, "fraction": 0.5},
            "steps or fraction, not both",
        ),
        ({"type": "piecewise", "points": [[10, 1.0], [5, 0.5]]}, "steps must increase strictly"),
        ({"type": "step", "initial": 1.0, "factor": 2, "every": 10}, "factor must be in (0, 1]"),
        (
            {"type": "linear", "initial": 1.0, "final": 0.1, "random_steps": 5},
            "does not take random_steps",
        ),
        ({"type": "linear", "initial": 1.0, "final": 0.1, "tau": 5}, "does not take tau"),
        ("fast", "expected a number or a mapping with a type"),
    ],
)
def test_invalid_specs(spec: object, message: str) -> None:
    with pytest.raises(ScheduleError) as error:
        build_schedule(spec, 100)
    assert message in str(error.value)


def test_invalid_specs_fail_at_validation_naming_the_key() -> None:
    with pytest.raises(
        UserError, match=r"key 'exploration': exponential decay: final \(0.5\) is larger"
    ):
        build_config(
            "dqn",
            "Breakout",
            overrides=["exploration={type: exponential, initial: 0.1, final: 0.5, tau: 10}"],
        )
    with pytest.raises(
        UserError, match=r"key 'exploration': schedule values must be >= 0 and <= 1, got 2"
    ):
        build_config("dqn", "Breakout", overrides=["exploration={type: constant, value: 2}"])
    with pytest.raises(UserError, match=r"key 'learning_rate': linear schedule does not take unit"):
        build_config(
            "a2c",
            "Breakout",
            overrides=["learning_rate={type: linear, initial: 1e-3, final: 0, unit: episodes}"],
        )


def test_sb3_exploration_keys_are_the_linear_case() -> None:
    config = build_config(
        "dqn",
        "Breakout",
        overrides=["exploration_fraction=0.5", "exploration_initial_eps=0.9", "n_timesteps=1000"],
    )
    assert config.hyperparams["exploration"] == {
        "type": "linear",
        "initial": 0.9,
        "final": 0.01,
        "fraction": 0.5,
    }
    assert config.exploration_schedule().value(250) == pytest.approx(0.9 - 0.89 / 2)
    # a schedule replaces the keys set before it; a key set after it is a conflict
    config = build_config("dqn", "Breakout", overrides=["exploration=0.05"])
    assert (
        config.hyperparams["exploration"] == 0.05
        and "exploration_fraction" not in config.hyperparams
    )
    with pytest.raises(UserError, match="conflicts with the exploration schedule"):
        build_config("dqn", "Breakout", overrides=["exploration=0.05", "exploration_final_eps=0.1"])
    # a whole schedule replaces an earlier one of another type (it does not merge into it)
    config = build_config(
        "dqn",
        "Breakout",
        preset="keras",
        overrides=["exploration={type: exponential, initial: 1.0, final: 0.02, tau: 1000}"],
    )
    assert config.hyperparams["exploration"] == {
        "type": "exponential",
        "initial": 1.0,
        "final": 0.02,
        "tau": 1000,
    }
    with pytest.raises(UserError, match="key 'learning_rate': there is no schedule here to edit"):
        build_config("a2c", "pong", overrides=["learning_rate.final=0"])
    # dotted --set edits one parameter of a schedule
    config = build_config("dqn", "Breakout", overrides=["exploration.final=0.05"])
    assert config.hyperparams["exploration"]["final"] == 0.05


def test_n_steps_validation() -> None:
    assert (
        build_config("dqn", "Breakout", overrides=["n_steps=3"]).algorithm_kwargs()["n_steps"] == 3
    )
    with pytest.raises(UserError, match="key 'n_steps': must be >= 1"):
        build_config("dqn", "Breakout", overrides=["n_steps=0"])
    assert build_config("a2c", "Breakout", overrides=["n_steps=100"]).hyperparams["n_steps"] == 100


@pytest.mark.parametrize("name", sorted(load_presets()))
def test_every_preset_validates(name: str) -> None:
    preset = load_presets()[name]
    config = build_config(preset["algo"], "Breakout", preset=name)
    assert config.learning_rate_schedule().value(0) > 0


def test_keras_preset() -> None:
    hp = build_config("dqn", "Breakout", preset="keras").hyperparams
    assert hp["policy_kwargs"]["optimizer_class"] == "adam" and hp["learning_rate"] == 2.5e-4
    assert (
        hp["max_grad_norm"] == 1.0
        and hp["buffer_size"] == 100_000
        and hp["target_update_interval"] == 10_000
    )
    assert hp["exploration"]["random_steps"] == 50_000 and hp["exploration"]["steps"] == 1_000_000
    assert hp["stop_at_training_score"] == 40
    with pytest.raises(UserError, match="unknown preset 'nature'"):
        build_config("dqn", "Breakout", preset="nature")


def _progress_rows(run_dir: Path, column: str) -> list[tuple[int, float]]:
    with open(run_dir / "progress.csv") as file:
        return [
            (int(row["time/total_timesteps"]), float(row[column]))
            for row in csv.DictReader(file)
            if row.get(column)
        ]


def test_dqn_logged_epsilon_follows_the_schedule(tmp_path: Path) -> None:
    spec = "exploration={type: exponential, initial: 0.8, final: 0.05, tau: 150, random_steps: 100}"
    # CartPole: the logged rate is the schedule's whatever the game (Breakout took 100 s)
    config = build_config(
        "dqn",
        "CartPole-v1",
        overrides=[spec, "n_timesteps=900", "seed=0", "log_freq=200", *SHORT_DQN[1::2]],
    )
    run = start_run(tmp_path, config, "cpu", ["train"])
    result = train(config, run, TrainOptions(device="cpu"))
    rows = _progress_rows(run.path, "rollout/exploration_rate")
    assert len(rows) >= 3
    schedule = config.exploration_schedule()
    for step, epsilon in rows:
        assert epsilon == pytest.approx(schedule.value(step)), step
    assert result.timesteps >= 900


def test_a2c_learning_rate_decays_linearly_with_the_global_step(tmp_path: Path) -> None:
    config = build_config(
        "a2c",
        "CartPole-v1",
        overrides=[
            "learning_rate={type: linear, initial: 1e-3, final: 0.0}",
            "n_timesteps=4000",
            "n_envs=4",
            "seed=0",
        ],
    )
    run = start_run(tmp_path, config, "cpu", ["train"])
    train(config, run, TrainOptions(device="cpu"))
    rows = _progress_rows(run.path, "train/learning_rate")
    assert len(rows) >= 3
    for step, learning_rate in rows:
        # Rows are written between rollouts, after the update that used the rate of `step`.
        assert learning_rate == pytest.approx(1e-3 * (1 - step / 4000)), step
    # the schedule reads the global step, so a resumed model continues where it was
    from stable_baselines3 import A2C

    model = A2C.load(run.final_model, device="cpu")
    from zoo.algorithms.algos import ZooA2C

    resumed = ZooA2C.load(run.final_model, device="cpu")
    resumed.set_logger(configure(None, []))
    resumed.num_timesteps = 1000
    resumed._update_learning_rate(resumed.policy.optimizer)
    assert resumed.policy.optimizer.param_groups[0]["lr"] == pytest.approx(7.5e-4)
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-6)


def test_epsilon_in_episodes(tmp_path: Path) -> None:
    spec = "exploration={type: linear, initial: 1.0, final: 0.1, steps: 40, unit: episodes}"
    config = build_config(
        "dqn", "CartPole-v1", overrides=[spec, "n_timesteps=600", "seed=0", "learning_starts=100"]
    )
    run = start_run(tmp_path, config, "cpu", ["train"])
    train(config, run, TrainOptions(device="cpu"))
    from zoo.algorithms.algos import ZooDQN

    model = ZooDQN.load(run.final_model, device="cpu")
    assert model._episode_num > 5
    assert model.exploration_rate == pytest.approx(
        config.exploration_schedule().value(model._episode_num)
    )


def test_stop_at_training_score(tmp_path: Path) -> None:
    config = build_config(
        "a2c",
        "CartPole-v1",
        overrides=["stop_at_training_score=5", "n_timesteps=100000", "n_envs=4", "seed=0"],
    )
    run = start_run(tmp_path, config, "cpu", ["train"])
    result = train(config, run, TrainOptions(device="cpu"))
    assert result.timesteps < 20_000  # 100 CartPole games, each far above 5 steps


def _color_pixels(image: np.ndarray, hex_color: str) -> int:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image[..., :3].astype(int) - rgb).sum(axis=-1) < 30).sum())


def test_zoo_schedule_draws_both_curves(in_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = in_process(
        "schedule",
        "--algo",
        "dqn",
        "--env",
        "Breakout",
        "-o",
        "eps.png",
        "--width",
        "900",
        "--height",
        "600",
        "--set",
        "exploration={type: exponential, initial: 1.0, final: 0.05, tau: 250000, random_steps: 50000}",
        "--set",
        "learning_rate={type: linear, initial: 1e-4, final: 1e-5}",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "epsilon (steps) 0: 1, 50,000: 1" in result.stdout and "1,300,000: 0.0564" in result.stdout
    )
    image = np.asarray(Image.open(tmp_path / "eps.png").convert("RGB"))
    assert image.shape[:2] == (600, 900)
    assert _color_pixels(image, EPSILON_COLOR) > 500
    assert _color_pixels(image, LEARNING_RATE_COLOR) > 500
    bad = in_process(
        "schedule",
        "--algo",
        "dqn",
        "--env",
        "Breakout",
        "--set",
        "exploration={type: exponential, initial: 1.0}",
    )
    assert (
        bad.returncode == 2
        and "key 'exploration'" in bad.stderr
        and len(bad.stderr.splitlines()) == 1
    )


def test_schedule_refuses_an_output_it_would_not_write_as_named(
    in_process: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    (tmp_path / "plots").mkdir()
    cases = [
        ("plots", "-o plots: is a folder; give an image file name such as plots/schedule.png"),
        ("eps", "-o eps: give an image file name ending in .png, .svg or .pdf"),
    ]
    for output, message in cases:
        result = in_process("schedule", "--algo", "dqn", "--env", "Breakout", "-o", output)
        assert result.returncode == 2 and result.stderr.strip() == f"zoo: error: {message}"
        assert "Wrote" not in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plots"]
    assert list((tmp_path / "plots").iterdir()) == []


def test_zoo_schedule_draws_the_value_clip_range(in_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = in_process(
        "schedule",
        "--algo",
        "ppo",
        "--env",
        "Breakout",
        "-o",
        "clip.png",
        "--set",
        "clip_range_vf={type: linear, initial: 0.2, final: 0.0}",
    )
    assert result.returncode == 0, result.stderr
    assert "value clip range (steps) 0: 0.2, " in result.stdout
    image = np.asarray(Image.open(tmp_path / "clip.png").convert("RGB"))
    assert _color_pixels(image, VALUE_CLIP_RANGE_COLOR) > 500
