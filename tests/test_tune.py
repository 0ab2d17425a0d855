"""zoo tune: search spaces, trials through the real training code, pruning, storages."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import torch as th
from optuna.trial import TrialState

from tests.conftest import REPO
from zoo.algorithms.model_loading import load_algorithm  # noqa: F401  (registers zoo's algos for SB3 loading)
from zoo.cli import build_parser
from zoo.commands.options import config_choice
from zoo.config.choice import ConfigChoice
from zoo.config.config import build_config
from zoo.core.errors import UserError
from zoo.envs.stack import make_vec_env_for
from zoo.runs.evaluation import EvaluationResult
from zoo.training.model_setup import build_model
from zoo.tune import (
    StudyStorage,
    TrialReporter,
    TuneSettings,
    load_search_space,
    make_sampler,
    prepare_study,
    run_trial,
    trial_config,
)

PG_URL = os.environ.get("ZOO_TEST_POSTGRES_URL")
CARTPOLE_TRIAL = ["--algo", "dqn", "--env", "CartPole-v1", "--set", "eval_episodes=2"]

Zoo = Callable[..., subprocess.CompletedProcess[str]]


def _memory_storage(study: optuna.Study) -> StudyStorage:
    return StudyStorage(study._storage, "memory", contextlib.nullcontext, None)


@pytest.mark.parametrize(
    ("algo", "env"),
    [
        ("dqn", "Breakout"),
        ("qrdqn", "Pong"),
        ("c51", "Breakout"),
        ("a2c", "Breakout"),
        ("dqn", "CartPole-v1"),
        ("ppo", "Breakout"),
        ("ppo", "CartPole-v1"),
    ],
)
def test_shipped_search_spaces_give_valid_configs(algo: str, env: str) -> None:
    space = load_search_space(algo)
    settings = TuneSettings(ConfigChoice(algo, env), trials=1, trial_steps=5000)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    types = set()
    for number in range(25):
        trial = study.ask()
        values = space.suggest(trial, settings.trial_steps)
        config = trial_config(settings, values, number)  # raises on any invalid value
        assert config.n_timesteps == 5000
        schedule = config.hyperparams["learning_rate"]
        types.add(schedule["type"] if isinstance(schedule, dict) else "number")
        if algo in ("dqn", "qrdqn", "c51"):
            exploration = config.hyperparams["exploration"]
            assert exploration["initial"] == 1.0
            assert 0 <= exploration.get("random_steps", 0) <= 500
            assert 1 <= config.hyperparams["n_steps"] <= 10
            assert config.hyperparams["learning_starts"] == 250  # 5% of the trial
        elif algo == "a2c":
            assert config.hyperparams["n_steps"] in (5, 8, 16, 20, 32, 50, 64, 100, 128)
        else:  # ppo: every minibatch size divides the rollout it is cut from
            rollout = config.hyperparams["n_steps"] * config.hyperparams["n_envs"]
            assert rollout % config.hyperparams["batch_size"] == 0
        study.tell(trial, 0.0)
    assert types == {"constant", "linear", "exponential"}


def test_full_run_values_scale_to_the_run_and_keep_trial_only_out() -> None:
    space = load_search_space("dqn")
    params = {
        "exploration.type": "exponential",
        "exploration.random_steps": 0.1,
        "exploration.length": 0.5,
        "exploration.final": 0.01,
        "n_steps": 3,
        "learning_rate.type": "linear",
        "learning_rate.initial": 1e-4,
        "learning_rate.final_fraction": 0.1,
    }
    trial_values = space.from_params(params, 10_000)
    assert trial_values["exploration"] == {
        "type": "exponential",
        "random_steps": 1000,
        "initial": 1.0,
        "final": 0.01,
        "tau": 1000.0,  # settled (5 tau) at half the run
    }
    assert trial_values["learning_starts"] == 500
    full = space.from_params(params, 10_000_000, for_trial=False)
    assert "learning_starts" not in full
    assert full["exploration"]["random_steps"] == 1_000_000
    assert full["learning_rate"] == {
        "type": "linear",
        "initial": 1e-4,
        "final": pytest.approx(1e-5),
        "steps": 10_000_000,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dqn:\n  n_steps: {int: [10, 1]}\n", "bad range [10, 1]: LOW is above HIGH"),
        ("dqn:\n  n_steps: {int: [0, 5]}\n", "bad range: LOW 0: must be"),
        ("dqn:\n  gamma: {float: [0.9, 1.5]}\n", "bad range: HIGH 1.5"),
        ("dqn:\n  learning_rate: {float: [0, 1.0e-3], log: true}\n", "log scale needs LOW > 0"),
        ("dqn:\n  nsteps: {int: [1, 3]}\n", "did you mean 'n_steps'"),
        ("dqn:\n  n_steps: {integer: [1, 3]}\n", "unknown key 'integer'"),
        ("dqn:\n  n_timesteps: {int: [1, 3]}\n", "zoo tune sets n_timesteps"),
        (
            "dqn:\n  exploration:\n    type: {choices: [linear, cosine]}\n    initial: {value: 1.0}\n"
            "    final: {value: 0.01}\n    length: {value: 0.1, scale: run}\n",
            "choose among",
        ),
        (
            "dqn:\n  exploration:\n    type: {value: linear}\n    initial: {value: 1.0}\n"
            "    final: {float: [0.01, 2.0]}\n    length: {value: 0.1, scale: run}\n",
            "outside [0, 1]",
        ),
        ("dqn:\n  learning_starts: {value: 3, scale: run}\n", "fraction of the run"),
        ("dqn:\n  n_steps: {int: [1, 3]\n", "invalid YAML"),
        ("dnq:\n  n_steps: {int: [1, 3]}\n", "section 'dnq' is not an algo"),
    ],
)
def test_a_bad_search_space_exits_2_with_one_line(
    in_process: Zoo,
    write_yaml: Callable[[str, str], Path],
    tmp_path: Path,
    text: str,
    expected: str,
) -> None:
    space = write_yaml("space.yml", text)
    result = in_process(
        "tune", *CARTPOLE_TRIAL, "--trials", "2", "--trial-steps", "100",
        "--search-space", str(space), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_user_space_replaces_and_drops_entries(write_yaml: Callable[[str, str], Path]) -> None:
    space_file = write_yaml(
        "space.yml",
        "dqn:\n  n_steps: {value: 2}\n  learning_rate: null\n  gamma: {float: [0.9, 0.999]}\n",
    )
    space = load_search_space("dqn", space_file)
    keys = [entry.key for entry in space.entries]
    assert "learning_rate" not in keys and "gamma" in keys and "exploration" in keys
    values = space.from_params({"gamma": 0.95, "exploration.type": "linear",
                                "exploration.random_steps": 0.0, "exploration.length": 0.2,
                                "exploration.final": 0.05}, 1000)  # fmt: skip
    assert values["n_steps"] == 2 and values["gamma"] == 0.95


def test_sampled_values_merge_without_dropping_other_keys() -> None:
    settings = TuneSettings(
        ConfigChoice("dqn", "CartPole-v1",
                     overrides=("policy_kwargs.net_arch=[32, 32]", "batch_size=16")),
        trials=1, trial_steps=1000,
    )  # fmt: skip
    config = trial_config(settings, {"n_steps": 4, "gamma": 0.9}, 7)
    assert config.hyperparams["policy_kwargs"] == {"net_arch": [32, 32]}
    assert config.hyperparams["batch_size"] == 16
    assert config.hyperparams["n_steps"] == 4 and config.hyperparams["seed"] == 7
    assert config.hyperparams["eval_freq"] == 250 and config.hyperparams["train_freq"] == 256


def test_objective_is_the_mean_of_the_later_half_of_the_evaluations() -> None:
    reporter = TrialReporter(trial=None, pruner_name="median")  # type: ignore[arg-type]
    assert reporter.objective() is None
    reporter.evaluations = [(100, 1.0), (200, 2.0), (300, 10.0), (400, 20.0), (500, 30.0)]
    assert reporter.objective() == pytest.approx(20.0)


def test_a_network_gone_nan_stops_the_trial() -> None:
    config = build_config("dqn", "CartPole-v1", overrides=["seed=0"])
    env = make_vec_env_for(config.env, config.env_settings(), 0, None)
    try:
        model = build_model(config, env, "cpu")
        study = optuna.create_study()
        reporter = TrialReporter(study.ask(), "median")
        result = EvaluationResult(step=100, scores=[10.0], lengths=[10], epsilon=1.0,
                                  eval_epsilon=0.0, seconds=0.1)  # fmt: skip
        assert reporter(model, result) is True
        with th.no_grad():
            next(model.policy.parameters())[0].fill_(math.nan)
        assert reporter(model, result) is False
        assert reporter.stop_reason is not None and "NaN" in reporter.stop_reason
    finally:
        env.close()


def test_pruning_stops_a_trial_far_below_the_median(tmp_path: Path) -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    for _ in range(2):  # two finished trials that scored 500 at every evaluation
        study.add_trial(optuna.trial.create_trial(
            value=500.0, intermediate_values={s: 500.0 for s in range(200, 2001, 200)}
        ))  # fmt: skip
    settings = TuneSettings(
        ConfigChoice("dqn", "CartPole-v1", overrides=("eval_episodes=2",)),
        trials=3, trial_steps=2000, evals_per_trial=10, log_dir=tmp_path, seed=0,
    )  # fmt: skip
    trial = study.ask()
    outcome = run_trial(study, trial, settings, load_search_space("dqn"), _memory_storage(study))
    frozen = study.trials[-1]
    assert outcome.state == TrialState.PRUNED and frozen.state == TrialState.PRUNED
    assert frozen.user_attrs["timesteps"] == 200  # stopped at its first evaluation, not 2000
    assert "pruned at step 200" in frozen.user_attrs["pruned_reason"]
    assert list(frozen.intermediate_values) == [200]


def test_an_invalid_sampled_combination_fails_the_trial_with_its_reason(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"n_steps": 50})
    settings = TuneSettings(
        ConfigChoice("dqn", "CartPole-v1", overrides=("buffer_size=20",)),
        trials=1, trial_steps=300, log_dir=tmp_path,
    )  # fmt: skip
    space_file = tmp_path / "space.yml"
    space_file.write_text("dqn:\n  n_steps: {int: [1, 100]}\n")
    outcome = run_trial(
        study, study.ask(), settings, load_search_space("dqn", space_file), _memory_storage(study)
    )
    assert outcome.state == TrialState.FAIL
    assert "longer than the replay buffer" in study.trials[0].user_attrs["failure"]


def _journal_study(tmp_path: Path, name: str) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = tmp_path / "logs" / "tune" / name / "journal.log"
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def _check_budget(study: optuna.Study, n: int) -> None:
    trials = study.get_trials()
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(ended) == n, [(t.number, t.state) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    run_dirs = [t.user_attrs["run_dir"] for t in ended]
    assert len(set(run_dirs)) == n
    for trial in ended:
        assert trial.user_attrs["config"]["n_timesteps"] == trial.user_attrs["timesteps"] or (
            trial.state == TrialState.PRUNED
        )


@pytest.mark.slow
def test_two_workers_share_a_journal_study_and_the_best_yaml_trains(
    zoo: Zoo, tmp_path: Path
) -> None:
    result = zoo(
        "tune", *CARTPOLE_TRIAL, "--trials", "4", "--trial-steps", "400", "--evals-per-trial", "2",
        "--workers", "2", "--seed", "5", "--study", "cp", timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = _journal_study(tmp_path, "cp")
    _check_budget(study, 4)
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert len(pids) == 2  # both workers took trials
    folder = tmp_path / "logs" / "tune" / "cp"
    for name in ("trials.csv", "history.png", "best.yml"):
        assert (folder / name).stat().st_size > 0
    assert len((folder / "trials.csv").read_text().strip().splitlines()) == 5
    trained = zoo(
        "train", "--algo", "dqn", "--env", "CartPole-v1", "--hyperparams-file",
        str(folder / "best.yml"), "-n", "300", "--quiet", timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    config = (tmp_path / "logs" / "dqn" / "CartPole-v1_1" / "config.yml").read_text()
    best = study.best_trial.user_attrs["full_run_values"]
    assert f"n_steps: {best['n_steps']}" in config


@pytest.mark.slow
def test_two_tune_processes_on_breakout_take_exactly_the_budget(tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "zoo", "tune", "--algo", "dqn", "--env", "Breakout",
        "--trials", "3", "--trial-steps", "160", "--evals-per-trial", "1", "--pruner", "none",
        "--study", "bo", "--quiet", "--set", "eval_episodes=1", "--set", "eval_max_frames=2000",
        "--set", "buffer_size=1000",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [*args, "--seed", str(seed)],
            cwd=tmp_path,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in (1, 2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err
    study = _journal_study(tmp_path, "bo")
    _check_budget(study, 3)
    assert len(study.trials) == 3
    config = study.trials[0].user_attrs["config"]
    assert config["frame_stack"] == 4 and config["n_timesteps"] == 160


def test_tune_refuses_what_cannot_work(in_process: Zoo) -> None:
    cases = [
        (["--storage", "sqlite:///s.db", "--workers", "2"], "SQLite allows one writer"),
        (["--storage", "postgresql://nobody@127.0.0.1:9/none"], "cannot reach the study database"),
        (["--storage", "redis://x"], "unsupported"),
        (["--evals-per-trial", "0"], "--evals-per-trial must be"),
        (["--study", "a/b"], "names a folder"),
    ]
    for extra, expected in cases:
        result = in_process(
            "tune", *CARTPOLE_TRIAL, "--trials", "1", "--trial-steps", "100", *extra, timeout=60
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
    missing = in_process("tune", *CARTPOLE_TRIAL, "--study", "nothing-here", "--report", timeout=60)
    assert missing.returncode == 2 and "no study 'nothing-here'" in missing.stderr


def test_a_study_refuses_other_settings(tmp_path: Path) -> None:
    settings = TuneSettings(ConfigChoice("dqn", "CartPole-v1"), trials=2, trial_steps=200,
                            study="s", log_dir=tmp_path)  # fmt: skip
    prepare_study(settings)
    prepare_study(settings)  # the same settings join the study
    other = dataclasses.replace(settings, trial_steps=300)
    with pytest.raises(UserError, match=r"other settings \(trial_steps\)"):
        prepare_study(other)


@pytest.mark.slow
@pytest.mark.skipif(PG_URL is None, reason="ZOO_TEST_POSTGRES_URL is not set")
def test_postgres_study_survives_a_killed_worker(tmp_path: Path) -> None:
    assert PG_URL is not None
    name = f"zoo-test-{uuid.uuid4().hex[:8]}"
    args = [
        sys.executable, "-m", "zoo", "tune", *CARTPOLE_TRIAL, "--trials", "3",
        "--trial-steps", "2000", "--evals-per-trial", "2", "--pruner", "none", "--study", name,
        "--set", "gradient_steps=64",
        "--storage", PG_URL, "--heartbeat-interval", "1", "--grace-period", "3",
    ]  # fmt: skip
    storage = optuna.storages.RDBStorage(PG_URL)

    def start(seed: int) -> subprocess.Popen[str]:
        return subprocess.Popen([*args, "--seed", str(seed)], cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    victim, survivor = start(1), start(2)
    try:
        killed_trial = _wait_for_running_trial(storage, name, victim.pid)
        victim.send_signal(signal.SIGKILL)  # at once: the trial has barely begun
        victim.wait(timeout=30)
        _, err = survivor.communicate(timeout=500)
        assert survivor.returncode == 0, err
        study = optuna.load_study(study_name=name, storage=storage)
        by_number = {t.number: t for t in study.trials}
        assert by_number[killed_trial].state == TrialState.FAIL
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 3
        retried = [t for t in complete if t.system_attrs.get("failed_trial") == killed_trial]
        assert len(retried) == 1
        # the values drawn before the kill are kept; any not drawn yet are drawn in the retry
        assert by_number[killed_trial].params.items() <= retried[0].params.items()
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=name, storage=storage)


def _wait_for_running_trial(storage: optuna.storages.BaseStorage, name: str, pid: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(KeyError):
            study = optuna.load_study(study_name=name, storage=storage)
            for trial in study.get_trials(states=(TrialState.RUNNING,)):
                if trial.user_attrs.get("worker", {}).get("pid") == pid:
                    return trial.number
        time.sleep(0.1)
    raise AssertionError("the worker never started a trial")


def test_a_space_that_draws_nothing_is_refused(write_yaml: Callable[[str, str], Path]) -> None:
    assert (REPO / "hyperparams" / "search_spaces.yml").is_file()
    keys = ("exploration", "n_steps", "learning_rate", "learning_starts")
    path = write_yaml("space.yml", "dqn:\n" + "".join(f"  {key}: null\n" for key in keys))
    with pytest.raises(UserError, match="draws nothing"):
        load_search_space("dqn", path)


def _one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--trials", "0"], "--trials must be >= 1"),
        (["--trial-steps", "0"], "--trial-steps must be >= 1"),
        (["--storage", ""], "--storage '': give a journal file path"),
        (["--storage", "postgresql://"], "name the server and the database"),
        (["--storage", "postgresql:///optuna"], "name the server and the database"),
        (["--storage", "postgresql://user@dbhost"], "name the server and the database"),
        (["--hyperparams-file", "/dev/zero"], "/dev/zero: over 4 MiB"),
        # refused as `zoo train` refuses it: both build their config from the same options
        (["--vec-env", "ale"], "--vec-env: key 'vec_env': ale runs Atari pixel games only"),
    ],
)
def test_tune_refuses_nonsense_in_one_line(
    in_process: Zoo, tmp_path: Path, extra: list[str], expected: str
) -> None:
    result = in_process("tune", *CARTPOLE_TRIAL, "--trials", "1", "--trial-steps", "100", *extra)
    _one_line_error(result, expected)
    assert not (tmp_path / "logs").exists()


def test_a_folder_given_as_storage_is_refused(in_process: Zoo, tmp_path: Path) -> None:
    (tmp_path / "studies").mkdir()
    result = in_process(
        "tune", *CARTPOLE_TRIAL, "--trials", "1", "--trial-steps", "100", "--storage", "studies"
    )
    _one_line_error(result, "--storage studies: that is a folder; give a journal file such as")
    assert list((tmp_path / "studies").iterdir()) == []


def test_a_text_file_given_as_storage_is_refused_untouched(in_process: Zoo, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nsecond line\n")
    result = in_process(
        "tune", *CARTPOLE_TRIAL, "--trials", "1", "--trial-steps", "100", "--storage", "notes.txt"
    )
    _one_line_error(result, "--storage notes.txt: this file is not an Optuna study journal")
    assert notes.read_text() == "my notes\nsecond line\n"
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\x00\xff\xfe" * 100)
    result = in_process("tune", *CARTPOLE_TRIAL, "--report", "--storage", "data.bin")
    _one_line_error(result, "is not an Optuna study journal")
    assert binary.read_bytes() == b"\x00\xff\xfe" * 100


def test_report_on_a_damaged_journal_is_one_line(in_process: Zoo, tmp_path: Path) -> None:
    settings = TuneSettings(ConfigChoice("dqn", "CartPole-v1"), trials=1, trial_steps=100,
                            study="s", log_dir=tmp_path / "logs")  # fmt: skip
    prepare_study(settings)
    journal = settings.study_dir / "journal.log"
    first, *rest = journal.read_bytes().splitlines(keepends=True)
    assert rest  # the study's attributes follow its creation
    journal.write_bytes(first + b"\x00\xff not a record\n" + b"".join(rest))
    result = in_process("tune", *CARTPOLE_TRIAL, "--study", "s", "--report")
    _one_line_error(result, "journal.log: the study journal is damaged")
    assert not (settings.study_dir / "trials.csv").exists()


def test_report_of_an_unknown_study_creates_nothing(in_process: Zoo, tmp_path: Path) -> None:
    result = in_process("tune", *CARTPOLE_TRIAL, "--study", "unknown", "--report")
    _one_line_error(result, "no study 'unknown' in logs/tune/unknown/journal.log")
    assert not (tmp_path / "logs").exists()
    result = in_process("tune", *CARTPOLE_TRIAL, "--report", "--storage", "other.log")
    _one_line_error(result, "no study 'dqn-CartPole-v1' in other.log")
    assert not (tmp_path / "other.log").exists()


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_workers_with_the_same_seed_draw_different_values(tmp_path: Path, sampler: str) -> None:
    """Two workers, as on two machines given the same --seed, take turns on one study."""
    settings = TuneSettings(ConfigChoice("dqn", "CartPole-v1"), trials=6, trial_steps=1000,
                            seed=7, sampler=sampler, log_dir=tmp_path)  # fmt: skip
    space = load_search_space("dqn")
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="s", storage=storage, direction="maximize")
    workers = [
        optuna.load_study(study_name="s", storage=storage, sampler=make_sampler(settings))
        for _ in range(2)
    ]
    for number in range(6):
        study = workers[number % 2]
        trial = study.ask()
        space.suggest(trial, settings.trial_steps)
        study.tell(trial, float(number))
    drawn = [tuple(sorted(t.params.items())) for t in workers[0].trials]
    assert len(set(drawn)) == 6, drawn
    # one worker on a new study with the same seed draws the same values again
    again = optuna.create_study(sampler=make_sampler(settings), direction="maximize")
    for number in range(6):
        trial = again.ask()
        space.suggest(trial, settings.trial_steps)
        again.tell(trial, float(number))
    assert [tuple(sorted(t.params.items())) for t in again.trials] == drawn


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    import psycopg

    assert PG_URL is not None
    name = f"zoo_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(PG_URL is None, reason="ZOO_TEST_POSTGRES_URL is not set")
def test_four_workers_starting_together_on_a_new_database_all_join(
    fresh_database: str, tmp_path: Path
) -> None:
    settings = TuneSettings(ConfigChoice("dqn", "CartPole-v1"), trials=4, trial_steps=100,
                            study="race", storage=fresh_database, log_dir=tmp_path)  # fmt: skip
    start = threading.Barrier(4)
    errors: list[str] = []

    def worker() -> None:
        start.wait()  # every worker builds its storage at the same instant
        try:
            storage, _ = prepare_study(settings)
            storage.storage.engine.dispose()  # type: ignore[attr-defined]
        except UserError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    summaries = optuna.get_all_study_summaries(fresh_database.replace("://", "+psycopg://", 1))
    assert [summary.study_name for summary in summaries] == ["race"]


@pytest.mark.slow
@pytest.mark.skipif(PG_URL is None, reason="ZOO_TEST_POSTGRES_URL is not set")
def test_two_postgres_workers_with_the_same_seed_draw_different_values(
    fresh_database: str, tmp_path: Path
) -> None:
    """Two workers start together, as on two machines; one more joins later, so that at least
    two processes draw whatever the start-up times: no two trials draw the same values."""
    args = [
        sys.executable, "-m", "zoo", "tune", *CARTPOLE_TRIAL, "--trial-steps", "200",
        "--evals-per-trial", "1", "--pruner", "none", "--study", "same",
        "--storage", fresh_database, "--seed", "3", "--quiet", "--set", "eval_episodes=1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    together = [*args, "--trials", "6"]
    workers = [subprocess.Popen(together, cwd=tmp_path, env=env, text=True, **pipes)
               for _ in range(2)]  # fmt: skip
    for worker in workers:
        _, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err
    later = subprocess.run([*args, "--trials", "8"], cwd=tmp_path, env=env, text=True,
                           capture_output=True, timeout=400, check=False)  # fmt: skip
    assert later.returncode == 0, later.stderr
    study = optuna.load_study(
        study_name="same", storage=fresh_database.replace("://", "+psycopg://", 1)
    )
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 8
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) >= 2
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == len(drawn), drawn


def test_tune_trials_get_every_config_option_train_takes() -> None:
    options = [*CARTPOLE_TRIAL, "--vec-env", "subproc", "--n-envs", "2", "-n", "5000"]
    tune_args = build_parser().parse_args(["tune", *options, "--seed", "4"])
    train_args = build_parser().parse_args(["train", *options, "--seed", "4"])
    assert config_choice(tune_args) == config_choice(train_args)
    settings = TuneSettings(config_choice(tune_args), trials=1, trial_steps=100, seed=4)
    config = trial_config(settings, {}, 0)
    assert config.hyperparams["vec_env"] == "subproc"
    assert config.hyperparams["n_envs"] == 2
    assert settings.base_config().n_timesteps == 5000  # the full run best.yml is for
