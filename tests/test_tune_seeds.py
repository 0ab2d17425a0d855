"""zoo tune --seeds-per-trial K: K runs per trial in lockstep, their objective, pruning all of
them together, a killed worker's trial retried, tracking, the report, bad input."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import psutil
import pytest
import yaml
from optuna.trial import TrialState
from rliable import metrics

from zoo.config.choice import ConfigChoice
from zoo.core.errors import UserError
from zoo.runs.folders import Run
from zoo.tune import (
    StudyStorage,
    TuneSettings,
    load_search_space,
    prepare_study,
    run_trial,
    write_report,
)
from zoo.tune.trial_runs import (
    GO,
    SEED_STRIDE,
    STOP,
    Lockstep,
    SeedRun,
    finish,
    later_half_mean,
    trial_objective,
)

PG_URL = os.environ.get("ZOO_TEST_POSTGRES_URL")
CARTPOLE = ConfigChoice("dqn", "CartPole-v1", overrides=("eval_episodes=2",))
Zoo = Callable[..., subprocess.CompletedProcess[str]]


def _memory_storage(study: optuna.Study) -> StudyStorage:
    return StudyStorage(study._storage, "memory", contextlib.nullcontext, None)


def _evaluation_means(run_dir: Path) -> list[tuple[int, float]]:
    with open(run_dir / "evaluations.csv", newline="") as file:
        return [(int(row["step"]), float(row["mean"])) for row in csv.DictReader(file)]


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_two_seeds_give_two_run_folders_and_the_mean_of_their_scores(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    settings = TuneSettings(CARTPOLE, trials=1, trial_steps=400, evals_per_trial=2, seed=3,
                            log_dir=tmp_path, seeds_per_trial=2, pruner="none")  # fmt: skip
    outcome = run_trial(
        study, study.ask(), settings, load_search_space("dqn"), _memory_storage(study)
    )
    frozen = study.trials[0]
    assert outcome.state == TrialState.COMPLETE, frozen.user_attrs
    trial_dir = Path(frozen.user_attrs["run_dir"])
    assert trial_dir == settings.study_dir / "trials" / "trial_0000"
    assert sorted(p.name for p in trial_dir.iterdir()) == ["seed_0", "seed_1"]
    scores = []
    for j, seed in enumerate([3, 3 + SEED_STRIDE]):
        run_dir = trial_dir / f"seed_{j}"
        assert yaml.safe_load(Run(run_dir).config_file.read_text())["seed"] == seed
        assert (run_dir / "final_model.zip").is_file()
        evaluations = _evaluation_means(run_dir)
        assert [step for step, _ in evaluations] == [200, 400]
        score = later_half_mean(evaluations)
        assert score is not None
        scores.append(score)
    assert frozen.value == pytest.approx(float(np.mean(scores)))
    recorded = frozen.user_attrs["seed_runs"]
    assert [r["seed"] for r in recorded] == [3, 3 + SEED_STRIDE]
    assert [r["score"] for r in recorded] == pytest.approx(scores)
    # the pruner saw the mean of the two runs' evaluations at each step
    means = {step: float(np.mean([m for s, m in _all(trial_dir) if s == step])) for step in (200, 400)}  # fmt: skip
    assert frozen.intermediate_values == pytest.approx(means)

    lines = write_report(study, tmp_path / "report", "dqn", "CartPole-v1")
    assert any("best.yml: trial 0" in line for line in lines)
    best = (tmp_path / "report" / "best.yml").read_text()
    assert f"seed:score 3:{scores[0]:g}, {3 + SEED_STRIDE}:{scores[1]:g}" in best
    with open(tmp_path / "report" / "trials.csv", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["seed_scores"] == f"3:{scores[0]:g} {3 + SEED_STRIDE}:{scores[1]:g}"


def _all(trial_dir: Path) -> list[tuple[int, float]]:
    return [e for run in sorted(trial_dir.iterdir()) for e in _evaluation_means(run)]


def test_a_pruned_trial_stops_all_its_runs_at_the_same_step(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    settings = TuneSettings(CARTPOLE, trials=1, trial_steps=800, evals_per_trial=4, seed=0,
                            log_dir=tmp_path, seeds_per_trial=2)  # fmt: skip
    outcome = run_trial(
        study, study.ask(), settings, load_search_space("dqn"), _memory_storage(study)
    )
    frozen = study.trials[0]
    assert outcome.state == TrialState.PRUNED, frozen.user_attrs
    assert "pruned at step 200" in frozen.user_attrs["pruned_reason"]
    assert list(frozen.intermediate_values) == [200]
    assert [r["timesteps"] for r in frozen.user_attrs["seed_runs"]] == [200, 200]
    for run_dir in sorted(Path(frozen.user_attrs["run_dir"]).iterdir()):
        assert [step for step, _ in _evaluation_means(run_dir)] == [200]
        assert yaml.safe_load((run_dir / "run.yml").read_text())["status"] == "finished"


def test_the_trial_objective_is_the_mean_rliables_iqm_or_the_worst() -> None:
    scores = [1.0, 2.0, 3.0, 10.0, 50.0]
    assert trial_objective(scores, "mean") == pytest.approx(13.2)
    assert trial_objective(scores, "iqm") == pytest.approx(metrics.aggregate_iqm(np.array(scores)))
    assert trial_objective(scores, "iqm") == pytest.approx(5.0)
    assert trial_objective(scores, "min") == 1.0


@dataclasses.dataclass
class _FakeProcess:
    """A thread speaking a seed run's side of the lockstep, in place of its process."""

    thread: threading.Thread
    exitcode: int = 0

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()


def _fake_runs(scripts: list[list[tuple[int, float]]], log: list[tuple[int, str]]) -> list[SeedRun]:
    """Runs that evaluate as scripted (NaN: a network gone NaN) and log the words they get."""

    def play(index: int, connection: Connection, script: list[tuple[int, float]]) -> None:
        word = connection.recv()
        log.append((index, word))
        done = 0
        while word == GO and done < len(script):
            step, mean = script[done]
            done += 1
            connection.send(("evaluation", step, mean, not np.isnan(mean)))
            word = connection.recv()
            log.append((index, word))
        connection.send(("done", script[done - 1][0] if done else None, False))

    runs = []
    for index, script in enumerate(scripts):
        mine, theirs = Pipe()
        thread = threading.Thread(target=play, args=(index, theirs, script), daemon=True)
        thread.start()
        runs.append(SeedRun(index, index, Run(Path(f"seed_{index}")), _FakeProcess(thread), mine))  # type: ignore[arg-type]
    return runs


def test_runs_take_turns_one_at_a_time_and_meet_at_each_evaluation() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    log: list[tuple[int, str]] = []
    runs = _fake_runs([[(100, 1.0), (200, 3.0)], [(100, 5.0), (200, 7.0)]], log)
    lockstep = Lockstep(trial, runs, at_once=1, pruner="none")
    lockstep.run()
    ended = finish(lockstep, trial, "mean")
    # one turn at a time: run 1 trains to step 100 only after run 0 got there, and so on
    assert log == [(0, GO), (1, GO), (0, GO), (1, GO), (0, GO), (1, GO)]
    assert lockstep.means == [(100, 3.0), (200, 5.0)]
    assert ended.state == TrialState.COMPLETE and ended.value == pytest.approx(5.0)


def test_a_nan_in_one_run_stops_every_run_of_the_trial() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    log: list[tuple[int, str]] = []
    runs = _fake_runs([[(100, 1.0), (200, 2.0)], [(100, float("nan")), (200, 2.0)]], log)
    lockstep = Lockstep(trial, runs, at_once=2, pruner="median")
    lockstep.run()
    ended = finish(lockstep, trial, "mean")
    assert ended.state == TrialState.PRUNED
    assert ended.reason == "the network went NaN or infinite by step 100"
    assert sorted(log) == [(0, GO), (0, STOP), (1, GO), (1, STOP)]


def test_a_study_of_several_seeds_refuses_workers_with_other_ones(tmp_path: Path) -> None:
    settings = TuneSettings(CARTPOLE, trials=2, trial_steps=200, study="s", log_dir=tmp_path,
                            seeds_per_trial=2)  # fmt: skip
    prepare_study(settings)
    prepare_study(settings)
    with pytest.raises(UserError, match=r"other settings \(seeds_per_trial, trial_objective\)"):
        prepare_study(dataclasses.replace(settings, seeds_per_trial=1))
    with pytest.raises(UserError, match=r"other settings \(trial_objective\)"):
        prepare_study(dataclasses.replace(settings, trial_objective="min"))


@pytest.mark.parametrize("k", ["0", "-1", "65"])
def test_seeds_per_trial_out_of_range_is_one_line_and_creates_nothing(
    in_process: Zoo, tmp_path: Path, k: str
) -> None:
    result = in_process(
        "tune", "--algo", "dqn", "--env", "CartPole-v1", "--trials", "1", "--trial-steps", "100",
        "--seeds-per-trial", k,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert lines == ["zoo: error: --seeds-per-trial must be between 1 and 64"], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_a_killed_workers_trial_of_two_seeds_runs_again(tmp_path: Path, storage: str) -> None:
    name = f"k-{uuid.uuid4().hex[:8]}"
    args = [
        sys.executable, "-m", "zoo", "tune", "--algo", "dqn", "--env", "CartPole-v1",
        "--set", "eval_episodes=1", "--set", "gradient_steps=64", "--trials", "2",
        "--trial-steps", "2000", "--evals-per-trial", "2", "--pruner", "none", "--study", name,
        "--seeds-per-trial", "2",
    ]  # fmt: skip
    if storage == "postgresql":
        if PG_URL is None:
            pytest.skip("ZOO_TEST_POSTGRES_URL is not set")
        args += ["--storage", PG_URL, "--heartbeat-interval", "1", "--grace-period", "3"]
    open_study = _study_opener(tmp_path, name, storage)
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    victim = subprocess.Popen([*args, "--seed", "1"], cwd=tmp_path, **pipes)
    try:
        killed, seed_runs = _running_trial_and_its_seed_runs(open_study, victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        _, alive = psutil.wait_procs(seed_runs, timeout=60)
        assert alive == [], "the runs of a killed worker's trial must stop"
        survivor = subprocess.run([*args, "--seed", "2"], cwd=tmp_path, timeout=600, **pipes)
        assert survivor.returncode == 0, survivor.stderr
        assert f"trial {killed}: its worker stopped answering" in survivor.stdout
        study = open_study()
        by_number = {t.number: t for t in study.trials}
        assert by_number[killed].state == TrialState.FAIL
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 2
        (retried,) = [
            t
            for t in complete
            if killed in (t.user_attrs.get("retry_of"), t.system_attrs.get("failed_trial"))
        ]
        assert by_number[killed].params.items() <= retried.params.items()
        assert [len(r["evaluations"]) for r in retried.user_attrs["seed_runs"]] == [2, 2]
        trial_dir = tmp_path / retried.user_attrs["run_dir"]
        assert sorted(p.name for p in trial_dir.iterdir()) == ["seed_0", "seed_1"]
    finally:
        if victim.poll() is None:
            victim.kill()
        if storage == "postgresql":
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=name, storage=_pg_storage())


def _pg_storage() -> optuna.storages.BaseStorage:
    assert PG_URL is not None
    return optuna.storages.RDBStorage(PG_URL.replace("://", "+psycopg://", 1))


def _study_opener(tmp_path: Path, name: str, storage: str) -> Callable[[], optuna.Study]:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = tmp_path / "logs" / "tune" / name / "journal.log"

    def open_study() -> optuna.Study:
        if storage == "postgresql":
            return optuna.load_study(study_name=name, storage=_pg_storage())
        if not journal.is_file():
            raise KeyError(name)
        return optuna.load_study(
            study_name=name, storage=JournalStorage(JournalFileBackend(str(journal)))
        )

    return open_study


def _running_trial_and_its_seed_runs(
    open_study: Callable[[], optuna.Study], pid: int
) -> tuple[int, list[psutil.Process]]:
    """A trial the worker `pid` runs, once both its seed runs have started."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        children = [
            c for c in psutil.Process(pid).children() if "spawn_main" in " ".join(c.cmdline())
        ]
        if len(children) == 2:
            with contextlib.suppress(KeyError):
                for trial in open_study().get_trials(states=(TrialState.RUNNING,)):
                    if trial.user_attrs.get("worker", {}).get("pid") == pid:
                        return trial.number, children
        time.sleep(0.2)
    raise AssertionError("the worker never started a trial of two runs")


@pytest.mark.slow
def test_each_seed_run_is_a_tracked_run_of_the_study(
    in_process: Zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    # the runs' own processes allow MLflow's file store for themselves; this reader too
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")

    store = tmp_path / "store"
    tuned = in_process(
        "tune", "--algo", "a2c", "--env", "CartPole-v1", "--trials", "1", "--trial-steps", "200",
        "--evals-per-trial", "2", "--set", "eval_episodes=1", "--study", "cp", "--quiet",
        "--seeds-per-trial", "2", "--track", "mlflow", "--track-uri", str(store),
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("tune/cp")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_name for r in runs} == {"trial_0000/seed_0", "trial_0000/seed_1"}
    for run in runs:
        assert run.info.status == "FINISHED"
        # One point per evaluation of the seed run (how many depends on the drawn rollout
        # length: a rollout longer than the trial's steps still runs whole).
        evaluations = Path(run.data.tags["zoo.run_dir"]) / "evaluations.csv"
        with evaluations.open() as file:
            rows = [(int(row["step"]), float(row["mean"])) for row in csv.DictReader(file)]
        history = client.get_metric_history(run.info.run_id, "eval/mean_score")
        assert len(rows) >= 2 and [(m.step, m.value) for m in history] == rows
