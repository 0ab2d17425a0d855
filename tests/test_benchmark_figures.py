"""`zoo plot --benchmark/--rows`: rliable's figures of a benchmark, their numbers rliable's own
for the same score matrix, and one line with exit code 2 for bad input."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from rliable import library, metrics, plot_utils

from tests.conftest import run_in_process
from zoo.commands import plot as plot_command
from zoo.results import benchmark_figures
from zoo.results.atari100k import ROW_FIELDS
from zoo.results.benchmark_figures import (
    BOOTSTRAP_SEED,
    improvement,
    interval_estimates,
    performance_profiles,
    profile_thresholds,
    sample_efficiency,
)
from zoo.results.benchmark_scores import grid_records, score_set

REPS = 200  # enough to exercise the bootstrap, fast enough for a unit test
RANDOM_HUMAN = {"Breakout": (1.7, 30.5), "Pong": (-20.7, 14.6)}
ENVS = {"Breakout": "BreakoutNoFrameskip-v4", "Pong": "PongNoFrameskip-v4"}
STEPS = (1000, 2000, 3000)


def _final(algo: str, game: str, seed: int) -> float:
    """A made-up final score, different for every cell."""
    base = {"Breakout": 10.0, "Pong": -5.0}[game] + (4.0 if algo == "dqn" else 0.0)
    return base + 3.0 * seed + (0.5 if game == "Pong" else 0.0) * seed**2


def _curve(algo: str, game: str, seed: int) -> list[float]:
    return [_final(algo, game, seed) * step / STEPS[-1] for step in STEPS]


def make_grid(
    root: Path,
    name: str = "small",
    algos: tuple[str, ...] = ("dqn", "qrdqn"),
    games: tuple[str, ...] = ("Breakout", "Pong"),
    seeds: tuple[int, ...] = (0, 1, 2),
    envs: dict[str, str] | None = None,
) -> Path:
    """A benchmark grid folder as `zoo benchmark` leaves it, with made-up scores."""
    envs = envs or ENVS
    grid_dir = root / "logs" / "benchmark" / name
    grid_dir.mkdir(parents=True)
    (grid_dir / "grid.yml").write_text(
        yaml.safe_dump({"name": name, "grid": {"algos": list(algos)}})
    )
    for algo in algos:
        for game in games:
            for seed in seeds:
                cell = grid_dir / f"{algo}_{envs[game]}_seed{seed}"
                cell.mkdir()
                run = {"algo": algo, "env": envs[game], "seed": seed, "status": "finished",
                       "timesteps": STEPS[-1], "total_timesteps": STEPS[-1]}  # fmt: skip
                (cell / "run.yml").write_text(yaml.safe_dump(run))
                final = _final(algo, game, seed)
                games_played = {"scores": [final - 1.0, final + 1.0], "lengths": [100, 100]}
                evaluation = {"games": 2, "seeds": [0, 1], "final": {"greedy": games_played}}
                (cell / "benchmark.yml").write_text(
                    yaml.safe_dump({"final_evaluation": evaluation})
                )
                with (cell / "evaluations.csv").open("w", newline="") as file:
                    writer = csv.writer(file)
                    writer.writerow(["step", "mean", "std", "scores"])
                    for step, mean in zip(STEPS, _curve(algo, game, seed), strict=True):
                        writer.writerow([step, mean, 1.0, f"{mean - 1} {mean + 1}"])
    return grid_dir


def _normalized(game: str, score: float) -> float:
    random, human = RANDOM_HUMAN[game]
    return (score - random) / (human - random)


def expected_finals(algo: str, seeds: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    return np.array([[_normalized(g, _final(algo, g, s)) for g in ENVS] for s in seeds])


def _zoo(root: Path, *args: str) -> Any:
    return run_in_process(["plot", *args], root)


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_the_matrices_are_the_cells_human_normalized_scores(tmp_path: Path) -> None:
    scores = score_set(grid_records(make_grid(tmp_path)))
    assert scores.tasks == ("Breakout", "Pong") and scores.normalized
    for algo in ("dqn", "qrdqn"):
        np.testing.assert_allclose(scores.finals[algo], expected_finals(algo))
        steps, array = scores.curves[algo]
        assert list(steps) == list(STEPS) and array.shape == (3, 2, 3)
        expected = [
            [[_normalized(g, v) for v in _curve(algo, g, s)] for g in ENVS] for s in range(3)
        ]
        np.testing.assert_allclose(array, expected)


def test_the_computed_numbers_are_rliables_for_the_same_matrix() -> None:
    finals = {"dqn": expected_finals("dqn"), "qrdqn": expected_finals("qrdqn")}

    def four(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_median(x), metrics.aggregate_iqm(x),
                         metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x)])  # fmt: skip

    np.random.seed(BOOTSTRAP_SEED)  # rliable resamples with numpy's global generator
    points, intervals = library.get_interval_estimates(finals, four, reps=REPS)
    ours = interval_estimates(finals, normalized=True, reps=REPS)
    for algo in finals:
        np.testing.assert_array_equal(ours[0][algo], points[algo])
        np.testing.assert_array_equal(ours[1][algo], intervals[algo])
    assert ours[0]["dqn"][1] == metrics.aggregate_iqm(finals["dqn"])

    pair = {"dqn;qrdqn": (finals["dqn"], finals["qrdqn"])}
    np.random.seed(BOOTSTRAP_SEED)
    poi, poi_cis = library.get_interval_estimates(
        pair, metrics.probability_of_improvement, reps=REPS
    )
    ours_poi, ours_poi_cis = improvement(finals, "dqn", "qrdqn", REPS)
    assert ours_poi["dqn;qrdqn"] == metrics.probability_of_improvement(
        finals["dqn"], finals["qrdqn"]
    )
    assert ours_poi == poi
    np.testing.assert_array_equal(ours_poi_cis["dqn;qrdqn"], poi_cis["dqn;qrdqn"])

    taus = profile_thresholds(finals)
    np.random.seed(BOOTSTRAP_SEED)
    profiles, profile_cis = library.create_performance_profile(finals, taus, reps=REPS)
    ours_profiles, ours_profile_cis = performance_profiles(finals, taus, REPS)
    for algo in finals:
        np.testing.assert_array_equal(ours_profiles[algo], profiles[algo])
        np.testing.assert_array_equal(ours_profile_cis[algo], profile_cis[algo])


def test_the_same_scores_give_the_same_numbers_and_leave_the_global_generator_alone() -> None:
    finals = {"dqn": expected_finals("dqn")}
    np.random.seed(5)
    expected_draws = np.random.random(3)
    np.random.seed(5)
    first = interval_estimates(finals, True, REPS)
    assert np.array_equal(np.random.random(3), expected_draws)
    second = interval_estimates(finals, True, REPS)
    np.testing.assert_array_equal(first[1]["dqn"], second[1]["dqn"])


def _spy(monkeypatch: pytest.MonkeyPatch, name: str, calls: list[dict[str, Any]]) -> None:
    original: Callable[..., Any] = getattr(plot_utils, name)
    names = original.__code__.co_varnames[: original.__code__.co_argcount]

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append({"function": name, **dict(zip(names, args, strict=False)), **kwargs})
        return original(*args, **kwargs)

    monkeypatch.setattr(plot_utils, name, spy)


def test_the_figures_are_written_and_plot_rliables_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_grid(tmp_path)
    calls: list[dict[str, Any]] = []
    for name in ("plot_interval_estimates", "plot_performance_profiles",
                 "plot_probability_of_improvement", "plot_sample_efficiency_curve"):  # fmt: skip
        _spy(monkeypatch, name, calls)
    result = _zoo(tmp_path, "--benchmark", "small", "--compare", "dqn", "qrdqn",
                  "--bootstrap-reps", str(REPS))  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = tmp_path / "logs" / "benchmark" / "small" / "figures"
    names = ["aggregates.png", "performance_profiles.png", "improvement_dqn_over_qrdqn.png",
             "sample_efficiency.png"]  # fmt: skip
    shown = Path("logs/benchmark/small/figures")  # as the command was given the grid
    assert result.stdout.splitlines() == [f"Wrote {shown / name}" for name in names]
    for name in names:
        with Image.open(figures / name) as image:
            assert image.format == "PNG" and min(image.size) > 100

    finals = {"dqn": expected_finals("dqn"), "qrdqn": expected_finals("qrdqn")}
    drawn = {call["function"]: call for call in calls}
    estimates = interval_estimates(finals, True, REPS)
    shown = drawn["plot_interval_estimates"]
    assert shown["metric_names"] == ("Median", "IQM", "Mean", "Optimality Gap")
    for algo in finals:
        np.testing.assert_allclose(shown["point_estimates"][algo], estimates[0][algo])
        np.testing.assert_allclose(shown["interval_estimates"][algo], estimates[1][algo])
    poi = drawn["plot_probability_of_improvement"]["probability_estimates"]
    assert poi["dqn;qrdqn"] == pytest.approx(
        metrics.probability_of_improvement(finals["dqn"], finals["qrdqn"])
    )
    profile = drawn["plot_performance_profiles"]
    np.random.seed(BOOTSTRAP_SEED)
    profiles, _ = library.create_performance_profile(finals, profile["tau_list"], reps=REPS)
    np.testing.assert_allclose(profile["performance_profiles"]["dqn"], profiles["dqn"])
    curves = [call for call in calls if call["function"] == "plot_sample_efficiency_curve"]
    assert [call["algorithms"] for call in curves] == [["dqn"], ["qrdqn"]]
    for call in curves:
        algo = call["algorithms"][0]
        array = score_set(grid_records(figures.parent)).curves[algo][1]
        iqm = [metrics.aggregate_iqm(array[..., i]) for i in range(len(STEPS))]
        np.testing.assert_allclose(call["point_estimates"][algo], iqm)
        assert list(call["frames"]) == list(STEPS)


def test_curves_over_steps_are_rliables_iqm_with_its_bootstrap() -> None:
    array = np.arange(24, dtype=float).reshape(4, 2, 3) ** 1.5
    np.random.seed(BOOTSTRAP_SEED)
    points, intervals = library.get_interval_estimates(
        {"dqn": array},
        lambda x: np.array([metrics.aggregate_iqm(x[..., i]) for i in range(3)]),
        reps=REPS,
    )
    ours = sample_efficiency({"dqn": (np.array(STEPS), array)}, REPS)
    np.testing.assert_array_equal(ours[0]["dqn"], points["dqn"])
    np.testing.assert_array_equal(ours[1]["dqn"], intervals["dqn"])


def _write_row(rows_dir: Path, agent: str, game: str, seed: int, mean: float) -> None:
    rows_dir.mkdir(parents=True, exist_ok=True)
    with (rows_dir / f"{agent}_{game}_seed{seed}.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerow({"agent": agent, "game": game, "seed": seed, "mean": mean})


def test_atari100k_rows_and_several_grids(tmp_path: Path) -> None:
    rows = tmp_path / "rows"
    for agent, bonus in (("drq_eps", 5.0), ("der", 0.0)):
        for game in ("Breakout", "Pong"):
            for seed in (0, 1):
                _write_row(rows, agent, game, seed, _final("qrdqn", game, seed) + bonus)
    result = _zoo(tmp_path, "--rows", "rows", "--compare", "drq_eps", "der",
                  "--bootstrap-reps", str(REPS), "-o", "out")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "aggregates.png",
        "improvement_drq_eps_over_der.png",
        "performance_profiles.png",
    ]  # rows keep final scores only: no curves over steps

    make_grid(tmp_path, "one", algos=("dqn",))
    make_grid(tmp_path, "two", algos=("dqn",), seeds=(0, 1))
    records = grid_records(tmp_path / "logs/benchmark/one", "one:")
    records += grid_records(tmp_path / "logs/benchmark/two", "two:")
    scores = score_set(records)
    assert list(scores.finals) == ["one:dqn", "two:dqn"]
    np.testing.assert_allclose(scores.finals["two:dqn"], expected_finals("dqn", (0, 1)))
    result = _zoo(tmp_path, "--benchmark", "one", "two", "--compare", "two:dqn", "one:dqn",
                  "--bootstrap-reps", str(REPS))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "logs/benchmark/one/figures/improvement_two-dqn_over_one-dqn.png").is_file()


def test_one_env_without_human_scores_keeps_its_raw_scores(tmp_path: Path) -> None:
    grid = make_grid(tmp_path, games=("Breakout",), envs={"Breakout": "CartPole-v1"})
    scores = score_set(grid_records(grid))
    assert not scores.normalized and scores.tasks == ("CartPole-v1",)
    assert scores.finals["dqn"][:, 0].tolist() == [_final("dqn", "Breakout", s) for s in range(3)]
    points, _ = interval_estimates(scores.finals, scores.normalized, REPS)
    assert len(points["dqn"]) == 3  # no optimality gap below a human score it does not have
    result = _zoo(tmp_path, "--benchmark", str(grid), "--bootstrap-reps", str(REPS))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--benchmark", "small", "--compare", "dqn", "ppo"], "--compare: no config 'ppo'"),
        (["--benchmark", "small", "--compare", "dqn", "dqn"], "two different configs"),
        (["--benchmark", "logs"], "not a benchmark folder (no grid.yml)"),
        (["--benchmark", "few"], "qrdqn has 1 evaluated run(s) of a task"),
        (["--benchmark", "small", "mixed"], "CartPole-v1 has no human and random score"),
        (["--benchmark", "small", "--mean"], "--mean draws learning curves"),
        (["--benchmark", "small", "--window", "5"], "--window draws learning curves"),
        (["logs/x", "--benchmark", "small"], "RUN_DIR draws learning curves"),
        (["--benchmark", "small", "-o", "f.png"], "-o names a folder"),
        (["--benchmark", "small", "--bootstrap-reps", "5"], "--bootstrap-reps must be in"),
        (["--compare", "dqn", "qrdqn"], "--compare goes with --benchmark or --rows"),
        (["--rows", "nowhere"], "no such folder of Atari-100k result rows"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    make_grid(tmp_path)
    make_grid(tmp_path, "few", seeds=(0, 1))
    (tmp_path / "logs/benchmark/few/qrdqn_PongNoFrameskip-v4_seed1/benchmark.yml").unlink()
    make_grid(tmp_path, "mixed", games=("Breakout",), envs={"Breakout": "CartPole-v1"})
    before = _tree(tmp_path)
    result = _zoo(tmp_path, *args, "--bootstrap-reps", "100") if "--bootstrap-reps" not in args \
        else _zoo(tmp_path, *args)  # fmt: skip
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert _tree(tmp_path) == before


def test_the_commands_default_reps_are_the_figures() -> None:
    assert plot_command.BOOTSTRAP_REPS == benchmark_figures.BOOTSTRAP_REPS
    assert "zoo plot --benchmark" in plot_command.PLOT_EPILOG
