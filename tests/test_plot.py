"""`zoo plot` on real short runs: image size, curves drawn, no-episode runs, bad inputs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_in_process
from zoo.results.aggregates import interval_estimates
from zoo.results.plot import (
    RunCurves,
    evaluation_iqm,
    games_finished_by,
    load_run_curves,
    mean_and_spread,
    smooth,
)
from zoo.runs.folders import open_run
from zoo.schema.names import PLOT_PANELS

BLUE, ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's C0 and C1


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real short CartPole DQN runs (many finished games, evaluations, losses)."""
    root = tmp_path_factory.mktemp("plot")
    for seed in ("0", "1"):
        result = run_in_process(
            ["train", "--algo", "dqn", "--env", "CartPole-v1", "-n", "1500", "--seed", seed,
             "--quiet", "--set", "eval_freq=500", "--set", "eval_episodes=2",
             "--set", "learning_starts=300", "--set", "log_freq=250"],
            root,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    return root


def _pixels_of(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(np.abs(image[..., :3].astype(int) - colour) <= 8, axis=-1).sum())


def test_plot_draws_both_runs_at_the_requested_size(two_seeds: Path) -> None:
    output = two_seeds / "both.png"
    result = run_in_process(["plot", "--algo", "dqn", "--env", "CartPole-v1", "-o", str(output),
                      "--width", "900", "--height", "600", "--window", "10",
                      "--panels", "loss", "epsilon", "lr"], two_seeds)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Plotted 2 run(s)" in result.stdout
    with Image.open(output) as image:
        assert image.size == (900, 600)
        pixels = np.asarray(image.convert("RGB"))
    # each run's curves are drawn in its own colour: lines, not a blank canvas
    assert _pixels_of(pixels, BLUE) > 500 and _pixels_of(pixels, ORANGE) > 500


def test_plot_of_one_run_goes_into_its_folder_and_mean_writes_svg(two_seeds: Path) -> None:
    run_dir = two_seeds / "logs" / "dqn" / "CartPole-v1_1"
    result = run_in_process(["plot", str(run_dir), "--x", "episodes"], two_seeds)
    assert result.returncode == 0, result.stderr
    with Image.open(run_dir / "curves.png") as image:
        assert image.size == (1200, 800)
    svg = two_seeds / "mean.svg"
    result = run_in_process(["plot", "--algo", "dqn", "--env", "CartPole-v1", "--mean",
                      "-o", str(svg)], two_seeds)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert svg.read_text().count("<path") > 20


def test_a_run_with_no_finished_episode_is_one_clear_line(tmp_path: Path) -> None:
    result = run_in_process(["train", "--algo", "dqn", "--env", "CartPole-v1", "-n", "5", "--quiet",
                      "--set", "eval_freq=1000"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = run_in_process(["plot", "--algo", "dqn", "--env", "CartPole-v1"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "dqn/CartPole-v1_1 has no finished episode and no evaluation yet" in result.stderr


def test_plot_bad_inputs_are_one_line_and_exit_2(two_seeds: Path) -> None:
    cases = [
        (["--algo", "dqn"], "give --algo and --env together"),
        ([str(two_seeds / "nowhere")], "no such run folder"),
        (["--algo", "a2c", "--env", "CartPole-v1"], "no a2c run of CartPole-v1"),
        (["--algo", "dqn", "--env", "CartPole-v1", "-o", "x.jpg"], "give a .png or .svg"),
        (["--algo", "dqn", "--env", "CartPole-v1", "--window", "0"], "--window must be >= 1"),
        ([], "give run folders, or --algo and --env"),
    ]
    for args, message in cases:
        result = run_in_process(["plot", *args], two_seeds)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_smoothing_is_a_trailing_mean_over_what_exists() -> None:
    values = np.array([0.0, 2.0, 4.0, 6.0, 8.0])
    assert smooth(values, 3).tolist() == [0.0, 1.0, 2.0, 4.0, 6.0]
    assert smooth(values, 1).tolist() == values.tolist()


def test_evaluations_on_the_episode_axis_count_the_games_finished_by_then() -> None:
    curves = RunCurves(
        label="run",
        group="dqn Breakout",
        game_steps=np.array([100.0, 250.0, 250.0, 900.0]),
        game_scores=np.array([1.0, 2.0, 3.0, 4.0]),
        eval_steps=np.array([50.0, 250.0, 1000.0]),
        eval_means=np.zeros(3),
        eval_stds=np.zeros(3),
    )
    assert games_finished_by(curves, curves.eval_steps).tolist() == [0.0, 3.0, 4.0]


def test_mean_and_spread_use_the_range_every_run_covers() -> None:
    first = (np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    second = (np.array([2.0, 20.0]), np.array([4.0, 40.0]))
    combined = mean_and_spread([first, second])
    assert combined is not None
    grid, mean, spread = combined
    assert grid[0] == 2.0 and grid[-1] == 10.0
    # at x=10 the first run is at 10 and the second, interpolated, at 4 + (10 - 2) * 2 = 20
    assert mean[-1] == pytest.approx(15.0) and spread[-1] == pytest.approx(5.0)
    assert mean_and_spread([first, (np.array([11.0, 12.0]), np.array([0.0, 1.0]))]) is None


def test_mean_plots_the_iqm_of_the_runs_at_their_shared_evaluation_steps() -> None:
    def run(steps: list[float], means: list[float]) -> RunCurves:
        return RunCurves("run", "a2c Breakout", np.zeros(0), np.zeros(0), np.array(steps),
                         np.array(means), np.zeros(len(steps)))  # fmt: skip

    runs = [
        run([100, 200, 300], [1, 10, 20]),
        run([100, 200], [2, 40]),
        run([100, 200, 300], [3, 12, 1]),
        run([100, 200], [4, 11]),
    ]
    iqm = evaluation_iqm(runs)
    assert iqm is not None
    steps, point, low, high = iqm
    assert steps.tolist() == [100.0, 200.0]  # 300: not every run evaluated there
    # The IQM of four runs is the mean of the middle two: (2+3)/2 and (11+12)/2.
    assert point.tolist() == [2.5, 11.5]
    expected = interval_estimates([10, 40, 12, 11], reps=2_000)["iqm"]
    assert (point[1], low[1], high[1]) == pytest.approx(expected)
    assert evaluation_iqm(runs[:1]) is None


def test_damaged_files_are_named_not_called_a_run_without_games(
    in_process: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    run = tmp_path / "logs" / "dqn" / "CartPole-v1_1"
    run.mkdir(parents=True)
    (run / "run.yml").write_text("algo: dqn\nenv: CartPole-v1\ntimesteps: 1000\n")
    (run / "config.yml").write_text("n_timesteps: 1000\n")
    (run / "evaluations.csv").write_bytes(b"\x00\x01garbage\n")
    (run / "events.out.tfevents.1.host.1.0").write_bytes(b"\x17not a record" * 10)
    result = in_process("plot", str(run))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no finished episode" not in lines[0], lines
    assert "its TensorBoard event files hold no readable record" in lines[0]
    assert "evaluations.csv: malformed, no 'step', 'mean', 'std', 'scores' columns" in lines[0]
    assert not (run / "curves.png").exists()


def test_entropy_and_explained_variance_panels_of_an_actor_critic_run(tmp_path: Path) -> None:
    result = run_in_process(["train", "--algo", "a2c", "--env", "CartPole-v1", "-n", "400",
                             "--quiet", "--set", "log_freq=40"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / "a2c" / "CartPole-v1_1"
    curves = load_run_curves(open_run(run_dir), "a2c")
    for panel in ("entropy", "explained"):
        (tag,) = PLOT_PANELS[panel][1]
        steps, values = curves.scalars[tag]
        assert len(steps) >= 5, tag
        if panel == "entropy":  # minus the entropy of 2 actions: between -ln 2 and 0
            assert np.all((values >= -np.log(2) - 1e-6) & (values <= 0))
    plotted = run_in_process(["plot", str(run_dir), "--panels", "entropy", "explained",
                              "-o", "panels.png", "--height", "900"], tmp_path)  # fmt: skip
    assert plotted.returncode == 0, plotted.stderr
    with Image.open(tmp_path / "panels.png") as image:
        assert image.size == (1200, 900)
