"""--track mlflow / --track wandb: a real MLflow file store and a real offline W&B run, read back
(MLflow's client; the W&B run file's records); the refusals that must leave nothing behind."""

from __future__ import annotations

import csv
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from zoo.runs.tracking import flat_params

Zoo = Callable[..., subprocess.CompletedProcess[str]]

# A2C on CartPole, 2 envs x 5 steps a rollout: log rows every 100 steps, evaluations every 200.
TRAIN = [
    "train", "--algo", "a2c", "--env", "CartPole-v1", "--seed", "3", "--quiet",
    "--set", "policy_kwargs.net_arch=[16]", "--set", "log_freq=100", "--set", "eval_freq=200",
    "--set", "eval_episodes=2", "--save-freq", "200",
]  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _refused(result: subprocess.CompletedProcess[str], words: str, tmp_path: Path) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing may be created"


@pytest.mark.parametrize("kind", ["mlflow", "wandb"])
@pytest.mark.parametrize(
    "command",
    [
        ["train", "--algo", "a2c", "--env", "CartPole-v1"],
        ["tune", "--algo", "a2c", "--env", "CartPole-v1", "--trials", "1", "--trial-steps", "100"],
        ["benchmark", "--algos", "a2c", "--envs", "CartPole-v1", "-n", "100"],
    ],
    ids=["train", "tune", "benchmark"],
)
def test_a_missing_extra_is_one_line_naming_it(
    in_process: Zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, command: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, kind, None)  # `import mlflow` fails, as where not installed
    result = in_process(*command, "--track", kind)
    _refused(result, f"pip install zoo[{kind}]", tmp_path)


def test_an_unreachable_track_uri_is_one_line_and_creates_nothing(
    in_process: Zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = f"http://127.0.0.1:{_closed_port()}"
    result = in_process(*TRAIN, "--track", "mlflow", "--track-uri", server)
    _refused(result, f"--track-uri {server} does not answer", tmp_path)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    result = in_process(*TRAIN, "--track", "wandb", "--track-uri", server)
    _refused(result, f"W&B server {server} does not answer", tmp_path)


def test_a_store_that_cannot_be_made_is_one_line(in_process: Zoo, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for uri in (str(blocker / "mlruns"), (blocker / "mlruns").as_uri()):
        result = in_process(*TRAIN, "--track", "mlflow", "--track-uri", uri)
        assert result.returncode == 2 and "is not a folder" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    result = in_process(*TRAIN, "--track-uri", "somewhere")
    assert result.returncode == 2 and "--track-uri goes with --track" in result.stderr


def _tensorboard_steps(run_dir: Path) -> dict[str, list[int]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _evaluations(run_dir: Path) -> list[tuple[int, float]]:
    with open(run_dir / "evaluations.csv", newline="") as file:
        return [(int(row["step"]), float(row["mean"])) for row in csv.DictReader(file)]


def _same_evaluations(tracked: list[tuple[int, float]], logged: list[tuple[int, float]]) -> None:
    assert [step for step, _ in tracked] == [step for step, _ in logged]
    assert [mean for _, mean in tracked] == pytest.approx([mean for _, mean in logged], rel=1e-5)


@pytest.mark.slow
def test_mlflow_file_store_holds_params_metrics_and_files_and_a_resume_continues_the_run(
    in_process: Zoo, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    store = tmp_path / "store"
    trained = in_process(*TRAIN, "-n", "400", "--track", "mlflow", "--track-uri", str(store))
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / "logs" / "a2c" / "CartPole-v1_1"
    saved = yaml.safe_load((run_dir / "tracking.yml").read_text())
    client = MlflowClient(tracking_uri=store.as_uri())
    run = client.get_run(saved["run_id"])
    assert run.info.run_name == "a2c/CartPole-v1_1" and run.info.status == "FINISHED"
    assert run.data.tags["zoo.run_dir"] == str(run_dir)
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    assert run.data.params == flat_params(config)
    assert run.data.params["policy_kwargs.net_arch"] == "[16]"

    # Every TensorBoard scalar, at the same steps.
    tensorboard = _tensorboard_steps(run_dir)
    assert {"rollout/ep_rew_mean", "train/value_loss", "eval/mean_score", "episode/score"} <= set(
        tensorboard
    )
    for tag, steps in tensorboard.items():
        assert [m.step for m in client.get_metric_history(run.info.run_id, tag)] == steps, tag
    history = client.get_metric_history(run.info.run_id, "eval/mean_score")
    _same_evaluations([(m.step, m.value) for m in history], _evaluations(run_dir))
    assert [m.step for m in history] == [200, 400]
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"final_model.zip", "config.yml"} <= files
    local = Path(client.download_artifacts(run.info.run_id, "config.yml", str(tmp_path / "got")))
    assert local.read_text() == (run_dir / "config.yml").read_text()

    # The resume continues that tracked run (no --track needed): one run in the store.
    assert in_process("train", "--resume", str(run_dir), "-n", "600", "--quiet").returncode == 0
    (experiment,) = [e for e in client.search_experiments() if e.name == "zoo"]
    (only,) = client.search_runs([experiment.experiment_id])
    assert only.info.run_id == run.info.run_id and only.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval/mean_score")]
    assert steps == [200, 400, 600]


@pytest.mark.slow
def test_mlflow_tracker_sends_a_folder_as_a_folder(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from zoo.runs.trackers import open_tracker
    from zoo.runs.tracking import check_tracking

    videos = tmp_path / "run" / "videos"
    videos.mkdir(parents=True)
    (videos / "step-000000100.mp4").write_bytes(b"\x00\x01video")
    tracking = check_tracking("mlflow", str(tmp_path / "store"))
    tracker = open_tracker(tracking, tmp_path / "run", "x/run", {"a": {"b": 1}}, False, print)
    assert tracker is not None
    tracker.log_files([videos, tmp_path / "run" / "missing.zip"])
    tracker.finish("interrupted")
    client = MlflowClient(tracking_uri=tracking.uri)
    run_id = yaml.safe_load((tmp_path / "run" / "tracking.yml").read_text())["run_id"]
    assert [f.path for f in client.list_artifacts(run_id, "videos")] == [
        "videos/step-000000100.mp4"
    ]
    assert client.get_run(run_id).info.status == "KILLED"
    assert client.get_run(run_id).data.params == {"a.b": "1"}


def test_mlflow_runs_starting_together_share_the_experiment_one_of_them_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed runs of one tune trial start side by side: the one that loses the race to create
    the study's experiment uses the winner's instead of failing its run."""
    from mlflow.tracking import MlflowClient

    from zoo.runs.trackers import open_tracker
    from zoo.runs.tracking import check_tracking

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client
    tracking = check_tracking("mlflow", str(tmp_path / "store")).in_group("tune/cp")
    client = MlflowClient(tracking_uri=tracking.uri)
    winner = client.create_experiment("tune/cp")  # the other run got there first
    looked: list[str] = []

    def not_yet_there(self: MlflowClient, name: str) -> Any:
        looked.append(name)  # the first look happened before the other run created it
        return None if len(looked) == 1 else client.get_experiment(winner)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", not_yet_there)
    (tmp_path / "run").mkdir()
    tracker = open_tracker(tracking, tmp_path / "run", "trial_0000/seed_1", {}, False, print)
    assert tracker is not None
    tracker.finish("finished")
    run_id = yaml.safe_load((tmp_path / "run" / "tracking.yml").read_text())["run_id"]
    assert looked == ["tune/cp", "tune/cp"]
    assert client.get_run(run_id).info.experiment_id == winner


def test_a_group_is_created_once_before_its_runs_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tune and benchmark create the group's experiment before runs start side by side, so
    no two runs can each create an experiment of the same name."""
    from mlflow.tracking import MlflowClient

    from zoo.runs.trackers import create_tracking_group
    from zoo.runs.tracking import check_tracking

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracking = check_tracking("mlflow", str(tmp_path / "store")).in_group("tune/cp")
    create_tracking_group(tracking)
    create_tracking_group(tracking)  # again: the same one
    create_tracking_group(None)  # no --track: nothing
    client = MlflowClient(tracking_uri=tracking.uri)
    names = [e.name for e in client.search_experiments()]
    assert names.count("tune/cp") == 1


def _wandb_records(run_file: Path) -> list[Any]:
    """The records of a W&B run file: a 7-byte header, then 32 KiB blocks of chunks, each
    with a 7-byte header (CRC, length, type: 1 whole, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[1:4] == b"W&B"
    block, position, pending, records = 32768, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        position += 7
        pending += data[position : position + length]
        position += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _finished_records(run_file: Path, seconds: float = 30) -> list[Any]:
    """The run file's records once it holds the run's exit record (W&B's service writes the
    file in a process of its own)."""
    deadline = time.monotonic() + seconds
    while True:
        records = _wandb_records(run_file)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        assert time.monotonic() < deadline, f"{run_file} has no exit record"
        time.sleep(0.5)


def _history_rows(records: list[Any]) -> list[dict[str, Any]]:
    """Each W&B history row, by metric name (W&B keeps `a/b` as a key or as a nested key)."""
    return [
        {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
        for record in records
        if record.WhichOneof("record_type") == "history"
    ]


@pytest.mark.slow
def test_wandb_offline_run_holds_the_metrics(
    in_process: Zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "wb").mkdir()
    result = in_process(*TRAIN, "-n", "400", "--track", "wandb")
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / "a2c" / "CartPole-v1_1"
    run_id = yaml.safe_load((run_dir / "tracking.yml").read_text())["run_id"]
    (run_file,) = (tmp_path / "wb" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    records = _finished_records(run_file)
    (opened,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert opened.display_name == "a2c/CartPole-v1_1" and opened.project == "zoo"
    config = {item.key: json.loads(item.value_json) for item in opened.config.update}
    assert config["n_timesteps"] == 400 and config["run_dir"] == str(run_dir)
    rows = _history_rows(records)
    tensorboard = _tensorboard_steps(run_dir)
    for tag, steps in tensorboard.items():
        assert [row["global_step"] for row in rows if tag in row] == steps, tag
    evaluations = [
        (row["global_step"], row["eval/mean_score"]) for row in rows if "eval/mean_score" in row
    ]
    _same_evaluations(evaluations, _evaluations(run_dir))
    assert any(r.WhichOneof("record_type") == "artifact" for r in records)
    (exit_record,) = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 0

    # A resume continues the same W&B run id (a second offline folder that `wandb sync` joins).
    assert in_process("train", "--resume", str(run_dir), "-n", "600", "--quiet").returncode == 0
    folders = sorted((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(folders) == 2
    rows = _history_rows(_finished_records(folders[-1] / f"run-{run_id}.wandb"))
    steps = [row["global_step"] for row in rows if "eval/mean_score" in row]
    assert steps == [600], rows


@pytest.mark.slow
def test_each_tune_trial_and_each_benchmark_cell_is_a_tracked_run(
    in_process: Zoo, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    store = tmp_path / "store"
    tuned = in_process(
        "tune", "--algo", "a2c", "--env", "CartPole-v1", "--trials", "2", "--trial-steps", "200",
        "--evals-per-trial", "2", "--set", "eval_episodes=1", "--study", "cp", "--quiet",
        "--track", "mlflow", "--track-uri", str(store),
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    benched = in_process(
        "benchmark", "--algos", "a2c", "--envs", "CartPole-v1", "--seeds", "0", "1", "-n", "200",
        "--set", "eval_freq=100", "--set", "eval_episodes=1", "--eval-games", "1", "--name", "b",
        "--quiet", "--track", "mlflow", "--track-uri", str(store),
    )  # fmt: skip
    assert benched.returncode == 0, benched.stderr
    client = MlflowClient(tracking_uri=store.as_uri())
    for experiment_name, names in (
        ("tune/cp", {"trials/trial_0000", "trials/trial_0001"}),
        ("benchmark/b", {"b/a2c_CartPole-v1_seed0", "b/a2c_CartPole-v1_seed1"}),
    ):
        experiment = client.get_experiment_by_name(experiment_name)
        assert experiment is not None, experiment_name
        runs = client.search_runs([experiment.experiment_id])
        assert {r.info.run_name for r in runs} == names
        for run in runs:
            assert run.info.status == "FINISHED"
            assert client.get_metric_history(run.info.run_id, "eval/mean_score")
