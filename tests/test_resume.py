"""`zoo train --resume`, Ctrl-C and kill -9: a run always continues from a complete
checkpoint, on the same global step, schedules and TensorBoard curve."""

from __future__ import annotations

import csv
import fcntl
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch as th
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import wait_for_the_next_second
from zoo.algorithms.model_loading import load_model
from zoo.runs.checkpoints import checkpoint_folders, newest_checkpoint, read_checkpoint

Zoo = Callable[..., subprocess.CompletedProcess[str]]

# Rollouts of 250 steps, so checkpoints and log rows fall on multiples of 250 and 1000;
# schedules in absolute steps, so a run cut at 2000 has the same ones as a 4000-step run.
RESUMABLE = """\
n_timesteps: 4000
learning_starts: 500
buffer_size: 200000
train_freq: 250
gradient_steps: 10
target_update_interval: 100
batch_size: 32
exploration: {type: linear, initial: 1.0, final: 0.05, steps: 3000}
learning_rate: {type: linear, initial: 1.0e-3, final: 1.0e-4, steps: 4000}
save_freq: 1000
eval_freq: 1000
eval_episodes: 2
policy_kwargs: {net_arch: [32]}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "resumable.yml"
    path.write_text(RESUMABLE)
    return path


def _train_args(config_file: Path, *extra: str) -> list[str]:
    return [
        "train", "--algo", "dqn", "--env", "CartPole-v1", "--seed", "5",
        "--hyperparams-file", str(config_file), "--quiet", *extra,
    ]  # fmt: skip


def _scalar_series(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir))  # honours purge_step, as TensorBoard does
    events.Reload()
    return [(event.step, round(event.value, 9)) for event in events.Scalars(tag)]


def _evaluation_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "evaluations.csv", newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file)]


def _info(run_dir: Path) -> dict[str, object]:
    info = yaml.safe_load((run_dir / "run.yml").read_text())
    assert isinstance(info, dict)
    return info


def test_resumed_run_matches_the_uninterrupted_one(
    in_process: Zoo, tmp_path: Path, config_file: Path
) -> None:
    whole = in_process(*_train_args(config_file, "--log-dir", "whole"))
    assert whole.returncode == 0, whole.stderr
    first_half = in_process(*_train_args(config_file, "--log-dir", "halves", "-n", "2000"))
    assert first_half.returncode == 0, first_half.stderr
    halves_dir = tmp_path / "halves" / "dqn" / "CartPole-v1_1"
    wait_for_the_next_second()
    second_half = in_process("train", "--resume", str(halves_dir), "-n", "4000")
    assert second_half.returncode == 0, second_half.stderr
    assert "Resuming" in second_half.stdout and "at step 2,000 of 4,000" in second_half.stdout
    assert "has no replay buffer" in second_half.stderr  # save_replay_buffer is off

    whole_dir = tmp_path / "whole" / "dqn" / "CartPole-v1_1"
    for tag in ("rollout/exploration_rate", "train/learning_rate"):
        expected = _scalar_series(whole_dir, tag)
        assert [step for step, _ in expected] == [1000, 2000, 3000, 4000]
        assert _scalar_series(halves_dir, tag) == expected
    assert _evaluation_steps(halves_dir) == _evaluation_steps(whole_dir) == [1000, 2000, 3000, 4000]

    models = [load_model(d / "final_model.zip", device="cpu") for d in (whole_dir, halves_dir)]
    assert [m.num_timesteps for m in models] == [4000, 4000]
    assert models[0].exploration_rate == models[1].exploration_rate  # type: ignore[attr-defined]
    learning_rates = [m.policy.optimizer.param_groups[0]["lr"] for m in models]
    assert learning_rates[0] == pytest.approx(learning_rates[1])
    assert [_info(d)["timesteps"] for d in (whole_dir, halves_dir)] == [4000, 4000]
    assert _info(halves_dir)["resumes"][0]["from_step"] == 2000  # type: ignore[index]
    # The monitor kept the first half's games and added the second half's.
    monitor = (halves_dir / "monitor" / "0.monitor.csv").read_text().splitlines()
    assert len(monitor) - 2 > 40 and monitor[0].startswith("#")


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_checkpoint(run_dir: Path, process: subprocess.Popen[str], newer_than: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        steps = [step for step, path in checkpoint_folders(run_dir / "checkpoints")]
        if any(step > newer_than for step in steps):
            return
        if process.poll() is not None:
            return
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume_finishes_the_run(
    zoo: Zoo, tmp_path: Path, config_file: Path
) -> None:
    total = 6000
    args = _train_args(
        config_file, "-n", str(total), "--save-freq", "250", "--set", "save_replay_buffer=true"
    )
    run_dir = tmp_path / "logs" / "dqn" / "CartPole-v1_1"
    rng = random.Random(0)
    resumed_from = []
    for attempt in range(4):
        launch = args if attempt == 0 else ["train", "--resume", str(run_dir), "--quiet"]
        before, _ = newest_checkpoint(run_dir / "checkpoints")
        process = _spawn(launch, tmp_path)
        _wait_for_checkpoint(run_dir, process, before.step if before else -1)
        time.sleep(rng.uniform(0.0, 0.4))  # somewhere in training or in a checkpoint write
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        checkpoint, _ = newest_checkpoint(run_dir / "checkpoints")
        assert checkpoint is not None
        resumed_from.append(checkpoint.step)

    final = zoo("train", "--resume", str(run_dir))
    assert final.returncode == 0, final.stderr
    assert f"at step {resumed_from[-1]:,} of {total:,}" in final.stdout
    assert _info(run_dir)["status"] == "finished"
    assert _info(run_dir)["timesteps"] == total
    checkpoint, skipped = newest_checkpoint(run_dir / "checkpoints")
    assert checkpoint is not None and checkpoint.step == total and not skipped
    for _, path in checkpoint_folders(run_dir / "checkpoints"):
        read_checkpoint(path)  # every checkpoint left is complete
    assert load_model(run_dir / "final_model.zip").num_timesteps == total
    # One curve: no step logged twice, none going back, whatever the kills left behind.
    steps = [step for step, _ in _scalar_series(run_dir, "rollout/exploration_rate")]
    assert steps == list(range(1000, total + 1, 1000))
    evaluations = _evaluation_steps(run_dir)
    assert evaluations == sorted(set(evaluations)) and evaluations[-1] == total


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_a_second_one_quits_cleanly(
    zoo: Zoo, tmp_path: Path, config_file: Path
) -> None:
    run_dir = tmp_path / "logs" / "dqn" / "CartPole-v1_1"
    process = _spawn(_train_args(config_file, "-n", "200000", "--save-freq", "250"), tmp_path)
    _wait_for_checkpoint(run_dir, process, -1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "saving a checkpoint" in stderr
    info = _info(run_dir)
    assert info["status"] == "interrupted"
    checkpoint, _ = newest_checkpoint(run_dir / "checkpoints")
    assert checkpoint is not None and checkpoint.step == info["timesteps"]

    process = _spawn(["train", "--resume", str(run_dir), "--quiet"], tmp_path)
    _wait_for_checkpoint(run_dir, process, checkpoint.step)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    finish = zoo("train", "--resume", str(run_dir), "-n", str(checkpoint.step + 500))
    assert finish.returncode == 0, finish.stderr
    assert _info(run_dir)["timesteps"] == checkpoint.step + 500


def test_resume_refuses_what_is_not_a_resumable_run(
    in_process: Zoo, tmp_path: Path, config_file: Path
) -> None:
    (tmp_path / "empty").mkdir()
    for args, message in [
        (["--resume", "missing"], "missing: no such run folder"),
        (["--resume", "empty"], "empty: not a run folder (no run.yml or config.yml)"),
    ]:
        result = in_process("train", *args)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr

    done = in_process(*_train_args(config_file, "-n", "500"))
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "logs" / "dqn" / "CartPole-v1_1"
    before = sorted(p.name for p in run_dir.rglob("*"))
    for args, message in [
        (["--resume", str(run_dir)], "already at step 500 of 500; give a larger total"),
        (["--resume", str(run_dir), "--set", "gamma=0.9"], "--set cannot be combined"),
        (["--resume", str(run_dir), "--env", "Pong"], "--env cannot be combined"),
    ]:
        result = in_process("train", *args)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    with open(run_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = in_process("train", "--resume", str(run_dir), "-n", "1000")
    assert busy.returncode == 2 and "being trained by another zoo process" in busy.stderr
    assert sorted(p.name for p in run_dir.rglob("*")) == before, "nothing was touched"

    model = (run_dir / "checkpoints" / "step_000000000500" / "model.zip").read_bytes()
    (run_dir / "checkpoints" / "step_000000000500" / "model.zip").write_bytes(model[:100])
    only_bad = in_process("train", "--resume", str(run_dir), "-n", "1000")
    assert only_bad.returncode == 0, only_bad.stderr
    assert "skipping checkpoint step_000000000500" in only_bad.stderr
    assert "(truncated)" in only_bad.stderr and "starts over from step 0" in only_bad.stderr
    assert (run_dir / "checkpoints" / "unusable_step_000000000500").is_dir()


def test_init_from_a_run_starts_with_its_weights(
    in_process: Zoo, tmp_path: Path, config_file: Path
) -> None:
    source = in_process(*_train_args(config_file, "-n", "1000"))
    assert source.returncode == 0, source.stderr
    source_dir = tmp_path / "logs" / "dqn" / "CartPole-v1_1"
    # learning_starts 500 > 300 steps: no gradient step, so the online weights stay the
    # loaded ones (the target network is synced to them every 100 steps)
    warm = in_process(
        *_train_args(config_file, "-n", "300"), "--init-from", str(source_dir),
        "--skip-random-phase",
    )  # fmt: skip
    assert warm.returncode == 0, warm.stderr
    warm_dir = tmp_path / "logs" / "dqn" / "CartPole-v1_2"
    trained = load_model(source_dir / "final_model.zip", device="cpu").policy.state_dict()
    started = load_model(warm_dir / "final_model.zip", device="cpu").policy.state_dict()
    online = [key for key in trained if key.startswith("q_net.")]
    assert online and all(th.equal(trained[key], started[key]) for key in online)
    config = yaml.safe_load((warm_dir / "config.yml").read_text())
    assert config["random_warmup"] is False

    for args, message in [
        (["--set", "dueling=true"], "its network does not fit this run's"),
        (["--skip-random-phase"], None),
    ]:
        extra = ["--init-from", str(source_dir)] if message else []
        result = in_process(*_train_args(config_file, "-n", "300"), *args, *extra)
        assert result.returncode == 2
        expected = message or "--skip-random-phase goes with --init-from"
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "logs" / "dqn" / "CartPole-v1_3").exists(), "no run folder left"
