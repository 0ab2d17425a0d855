"""Resume, signals and write failures: a run folder is never hurt by what happens to it."""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import load_results

import zoo.training.resume
import zoo.training.train
from zoo.cli import main
from zoo.config.config import build_config
from zoo.core.atomic import partial_name
from zoo.core.errors import UserError
from zoo.runs.checkpoints import checkpoint_folder, checkpoint_folders, newest_checkpoint
from zoo.runs.folders import Run, start_run, training_lock
from zoo.training.resume import prepare_resume
from zoo.training.train import TrainOptions, train

# DQN on CartPole with a rollout of 4 steps: checkpoints every 200, rows every 100.
SETTINGS = ["seed=0", "train_freq=4", "gradient_steps=1", "learning_starts=100",
            "buffer_size=5000", "save_freq=200", "log_freq=100", "eval_freq=0"]  # fmt: skip


def _trained(root: Path, steps: int) -> Run:
    config = build_config("dqn", "CartPole-v1", overrides=[*SETTINGS, f"n_timesteps={steps}"])
    run = start_run(root, config, "cpu", ["train"])
    result = train(config, run, TrainOptions(device="cpu"))
    assert result.timesteps == steps and not result.interrupted
    return run


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A finished 600-step run with checkpoints at 200, 400 and 600."""
    return _trained(tmp_path_factory.mktemp("finished"), 600)


@pytest.fixture
def run(finished: Run, tmp_path: Path) -> Run:
    """A copy of the finished run to do things to."""
    copy = tmp_path / "run"
    shutil.copytree(finished.path, copy, ignore=shutil.ignore_patterns(".lock"))
    return Run(copy)


def _call(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _info(run: Run) -> dict[str, object]:
    return dict(yaml.safe_load(run.run_file.read_text()))


def test_a_resume_of_a_run_in_training_touches_nothing(run: Run) -> None:
    unfinished = checkpoint_folder(run.checkpoints_dir, 700)  # a save in progress
    unfinished.mkdir()
    (unfinished / "model.zip").write_bytes(b"half written")
    partial = run.path / ".final_model.zip.partial.zip"
    partial.write_bytes(b"half written")
    before = run.run_file.read_bytes()
    with open(run.lock_file, "a+") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, out, err = _call("train", "--resume", str(run.path), "-n", "900")
    assert code == 2
    assert (
        err.strip()
        == f"zoo: error: {run.path} is being trained by another zoo process; wait for it or stop it"
    )
    assert "Resuming" not in out
    assert run.run_file.read_bytes() == before  # no new total, no resume entry
    assert (unfinished / "model.zip").is_file() and partial.is_file()


def test_a_refused_resume_leaves_run_yml_alone(run: Run) -> None:
    before = run.run_file.read_bytes()
    code, out, err = _call("train", "--resume", str(run.path), "-n", "600")
    assert code == 2 and "already at step 600 of 600" in err and "Resuming" not in out
    assert run.run_file.read_bytes() == before


def test_without_a_usable_checkpoint_the_old_final_model_is_kept(run: Run) -> None:
    old_final = run.final_model.read_bytes()
    for folder in run.checkpoints_dir.iterdir():
        (folder / "model.zip").write_bytes(b"corrupt")
    code, _, err = _call("train", "--resume", str(run.path), "-n", "300")
    assert code == 0, err
    assert "has no complete checkpoint" in err
    kept = run.path / "final_model_before_restart_step_600.zip"
    assert "kept as final_model_before_restart_step_600.zip" in err
    assert kept.read_bytes() == old_final
    assert _info(run)["status"] == "finished" and _info(run)["timesteps"] == 300


def test_a_run_killed_while_writing_its_final_model_is_finished_by_a_resume(run: Run) -> None:
    # Killed after checkpoint 600 and before the final model replaced the older one.
    checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
    assert checkpoint is not None and checkpoint.step == 600
    run.final_model.write_bytes(b"the model of step 400")
    partial = run.path / ".final_model.zip.partial.zip"
    partial.write_bytes(b"half written")
    # Text files a kill left under their temporary names, in the run and monitor folders.
    leftovers = [partial_name(run.run_file), partial_name(run.monitor_dir / "0.monitor.csv")]
    for leftover in leftovers:
        leftover.write_text("half written")
    info = _info(run)
    info["status"] = "running"
    run.run_file.write_text(yaml.safe_dump(info))
    code, out, err = _call("train", "--resume", str(run.path))
    assert code == 0, err
    assert "had reached step 600, its total: wrote final_model.zip" in out
    assert run.final_model.read_bytes() == checkpoint.model_file.read_bytes()
    assert not partial.exists() and not any(leftover.exists() for leftover in leftovers)
    assert _info(run)["status"] == "finished"
    again = _call("train", "--resume", str(run.path))
    assert again[0] == 2 and "already at step 600 of 600" in again[2]


def _read_only(path: Path) -> Callable[..., None]:
    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    return refuse


# A run folder made read-only before a resume (simulated: root ignores chmod). Each place the
# resume writes before the first step refuses in turn; none may end in a traceback or change
# run.yml, and the checkpoints stay as they were.
@pytest.mark.parametrize("refused", ["set_aside", "make_vec_env_for", "mark_resumed"])
def test_a_resume_of_a_read_only_run_folder_is_one_line_and_changes_nothing(
    refused: str, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    newest, _ = newest_checkpoint(run.checkpoints_dir)
    assert newest is not None
    if refused == "set_aside":  # a corrupt newest checkpoint is renamed aside
        newest.model_file.write_bytes(b"corrupt")
        module = zoo.training.resume
    else:
        module = zoo.training.train
    monkeypatch.setattr(module, refused, _read_only(run.monitor_dir))
    before = run.run_file.read_bytes()
    saved = sorted(p.name for p in run.checkpoints_dir.iterdir())
    code, out, err = _call("train", "--resume", str(run.path), "-n", "800")
    assert code == 2, err
    *notes, error = err.strip().splitlines()  # what the resume found, then the one error
    assert all(line.startswith(("warning: ", "note: ")) for line in notes), err
    assert error.startswith("zoo: error: ")
    assert "Traceback" not in err
    assert "Permission denied" in error and "nothing was trained" in error
    assert "Resuming" not in out
    assert run.run_file.read_bytes() == before
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == saved


def test_monitor_files_go_back_to_the_games_of_the_checkpoint(run: Run) -> None:
    shutil.rmtree(checkpoint_folder(run.checkpoints_dir, 600))  # as if killed after 400
    (monitor,) = run.monitor_dir.glob("*.monitor.csv")
    at_600 = monitor.read_text().splitlines()
    checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
    assert checkpoint is not None and checkpoint.step == 400
    rows_at_400 = checkpoint.training_state()["monitor_lines"][monitor.name]
    assert 2 < rows_at_400 < len(at_600)
    with training_lock(run):
        prepare_resume(run, None, lambda _: None)
    assert monitor.read_text().splitlines() == at_600[:rows_at_400]


def _an_hour_earlier(monitor: Path) -> None:
    """The monitor file of a run started an hour earlier: its header and its games' `t`."""
    header, columns, *rows = monitor.read_text().splitlines(keepends=True)
    meta = json.loads(header[1:])
    meta["t_start"] -= 3600
    shifted = [f"{r},{n},{float(t) + 3600}\n" for r, n, t in (row.split(",") for row in rows)]
    monitor.write_text("#" + json.dumps(meta) + "\n" + columns + "".join(shifted))


@pytest.mark.parametrize("vec_env", ["dummy", "subproc"])
def test_monitor_time_goes_on_across_a_resume(vec_env: str, run: Run) -> None:
    """SB3's load_results orders games by t_start + t: a resumed session whose `t` began at
    0 again had its games sorted among the first session's."""
    config_file = run.config_file
    config_file.write_text(config_file.read_text().replace("vec_env: dummy", f"vec_env: {vec_env}"))
    assert f"vec_env: {vec_env}" in config_file.read_text()
    (monitor,) = run.monitor_dir.glob("*.monitor.csv")
    _an_hour_earlier(monitor)
    games_before = len(monitor.read_text().splitlines()) - 2
    code, _, err = _call("train", "--resume", str(run.path), "-n", "1000")
    assert code == 0, err
    times = [float(row["t"]) for row in csv.DictReader(monitor.read_text().splitlines()[1:])]
    assert len(times) > games_before  # games of the resumed session were added
    assert times == sorted(times), times
    loaded = load_results(str(run.monitor_dir))
    assert list(loaded["t"]) == sorted(loaded["t"])


class StepAt(BaseCallback):
    """Calls `action` once when the run reaches `step`."""

    def __init__(self, step: int, action: object) -> None:
        super().__init__()
        self.step, self.action = step, action

    def _on_step(self) -> bool:
        if self.num_timesteps == self.step:
            self.action(self)  # type: ignore[operator]
        return True


def test_run_yml_follows_the_checkpoints(tmp_path: Path) -> None:
    config = build_config("dqn", "CartPole-v1", overrides=[*SETTINGS, "n_timesteps=500"])
    run = start_run(tmp_path, config, "cpu", ["train"])
    seen: list[dict[str, object]] = []
    train(config, run, TrainOptions(device="cpu"),
          extra_callbacks=[StepAt(450, lambda _: seen.append(_info(run)))])  # fmt: skip
    assert seen[0]["status"] == "running" and seen[0]["timesteps"] == 400


@pytest.fixture
def python_signals() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_after_a_ctrl_c_the_logging_and_checkpoint_grids_stay_anchored_at_0(
    tmp_path: Path, python_signals: None
) -> None:
    config = build_config("dqn", "CartPole-v1", overrides=[*SETTINGS, "n_timesteps=1000"])
    run = start_run(tmp_path, config, "cpu", ["train"])
    stopped = train(config, run, TrainOptions(device="cpu", warn=lambda _: None),
                    extra_callbacks=[StepAt(602, lambda _: os.kill(os.getpid(), signal.SIGINT))])  # fmt: skip
    assert stopped.interrupted and stopped.timesteps == 604  # the end of that 4-step rollout
    with training_lock(run):
        resumption = prepare_resume(run, None, lambda _: None)
        train(resumption.config, run, TrainOptions(device="cpu"), start=resumption.start)
    with open(run.path / "progress.csv", newline="") as file:
        steps = [int(row["time/total_timesteps"]) for row in csv.DictReader(file)]
    assert steps == [100, 200, 300, 400, 500, 600, 604, 700, 800, 900, 1000]
    saved = sorted(int(p.name.split("_")[1]) for p in run.checkpoints_dir.iterdir())
    assert saved == [604, 800, 1000]  # keep_checkpoints: 3; the next periodic one is at 800


def test_sigterm_in_process_stops_at_the_rollout_and_saves_like_ctrl_c(
    tmp_path: Path, python_signals: None
) -> None:
    """The fast twin of the slow subprocess test below: the same stop, saves and status."""
    config = build_config("dqn", "CartPole-v1", overrides=[*SETTINGS, "n_timesteps=1000"])
    run = start_run(tmp_path, config, "cpu", ["train"])
    warned: list[str] = []
    previous = signal.getsignal(signal.SIGTERM)
    try:
        stopped = train(config, run, TrainOptions(device="cpu", warn=warned.append),
                        extra_callbacks=[StepAt(302, lambda _: os.kill(os.getpid(), signal.SIGTERM))])  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.interrupted and stopped.exit_code == 143 and stopped.timesteps == 304
    assert any("SIGTERM again quits at once" in line for line in warned), warned
    assert not any("Ctrl-C" in line for line in warned), warned
    assert _info(run)["status"] == "interrupted" and _info(run)["timesteps"] == 304
    assert run.final_model.is_file()
    checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
    assert checkpoint is not None and checkpoint.step == 304


# A full disk, and a folder made read-only mid-run (EACCES; root ignores chmod, so simulated).
@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")],
)
def test_a_failed_write_mid_run_is_one_line_and_keeps_the_last_checkpoint(
    code: int, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = build_config("dqn", "CartPole-v1", overrides=[*SETTINGS, "n_timesteps=1000"])
    run = start_run(tmp_path, config, "cpu", ["train"])
    real_save = zoo.training.train.save_checkpoint
    calls: list[int] = []

    def no_new_files(path: Path, text: str) -> None:
        raise OSError(code, reason, str(path))

    def disk_full_on_the_second(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            # From now on no file can be made: run.yml is rewritten within its own space.
            monkeypatch.setattr(zoo.runs.folders, "atomic_write_text", no_new_files)
            raise OSError(code, reason, str(run.checkpoints_dir))
        return real_save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zoo.training.train, "save_checkpoint", disk_full_on_the_second)
    with pytest.raises(UserError) as failure:
        train(config, run, TrainOptions(device="cpu"))
    message = str(failure.value)
    assert "\n" not in message and reason in message
    assert "newest complete checkpoint: step 200" in message
    assert f"zoo train --resume {run.path}" in message
    checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
    assert checkpoint is not None and checkpoint.step == 200
    assert _info(run)["status"] == "failed"  # though no new file could be made


def test_a_run_ended_by_an_error_says_failed(tmp_path: Path) -> None:
    config = build_config("dqn", "CartPole-v1", overrides=[*SETTINGS, "n_timesteps=1000"])
    run = start_run(tmp_path, config, "cpu", ["train"])

    def fail(_: object) -> None:
        raise RuntimeError("a library bug")

    with pytest.raises(RuntimeError):
        train(config, run, TrainOptions(device="cpu"), extra_callbacks=[StepAt(302, fail)])
    assert _info(run)["status"] == "failed" and _info(run)["timesteps"] == 200


@pytest.mark.slow
def test_a_second_ctrl_c_quits_and_run_yml_says_interrupted(tmp_path: Path) -> None:
    script = f"""
import os, signal
from pathlib import Path
from stable_baselines3.common.callbacks import BaseCallback
from zoo.config.config import build_config
from zoo.core.interrupts import own_stop_signals
from zoo.runs.folders import start_run
from zoo.training.train import TrainOptions, train

class TwoCtrlCs(BaseCallback):
    def _on_step(self) -> bool:
        if self.num_timesteps == 302:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return True

own_stop_signals()
config = build_config("dqn", "CartPole-v1", overrides={[*SETTINGS, "n_timesteps=1000"]!r})
run = start_run(Path("."), config, "cpu", ["train"])
train(config, run, TrainOptions(device="cpu"), extra_callbacks=[TwoCtrlCs()])
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 130, result.stderr
    assert "quitting without a new checkpoint" in result.stderr
    info = _info(Run(tmp_path / "dqn" / "CartPole-v1_1"))
    assert info["status"] == "interrupted" and info["timesteps"] == 200


@pytest.mark.slow
@pytest.mark.parametrize("background", [False, True], ids=["foreground", "bash-background"])
def test_sigterm_saves_like_ctrl_c_and_exits_143(background: bool, tmp_path: Path) -> None:
    """Also for a run a script starts in the background (`zoo ... &` in an sbatch script),
    which inherits SIGINT ignored: zoo owns both signals whatever it inherited."""
    command = [sys.executable, "-m", "zoo", "train", "--algo", "dqn", "--env", "CartPole-v1",
               "-n", "1000000", *(a for s in SETTINGS for a in ("--set", s))]  # fmt: skip
    if background:  # bash says the pid of its background job, then waits for its exit code
        command = ["bash", "-c", f'{shlex.join(command)} & echo $!; wait "$!"']
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    zoo_pid = int(process.stdout.readline()) if background else process.pid
    checkpoints = tmp_path / "logs" / "dqn" / "CartPole-v1_1" / "checkpoints"
    deadline = time.monotonic() + 120
    while not any(checkpoints.glob("step_*/manifest.json")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(zoo_pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM: stopping at the end of this rollout" in err
    assert "SIGTERM again quits at once" in err and "Ctrl-C" not in err
    run = Run(checkpoints.parent)
    info = _info(run)
    assert info["status"] == "interrupted" and run.final_model.is_file()
    checkpoint, _ = newest_checkpoint(checkpoints)
    assert checkpoint is not None and checkpoint.step == info["timesteps"]
    assert int(str(info["timesteps"])) % 4 == 0  # on the rollout grid
    # Every checkpoint is complete (has its manifest) and the periodic ones are on their grid.
    folders = checkpoint_folders(checkpoints)
    assert len(folders) == len(list(checkpoints.iterdir()))  # nothing half-written left
    assert all((folder / "manifest.json").is_file() for _, folder in folders)
    steps = [step for step, _ in folders]
    assert all(step % 200 == 0 for step in steps[:-1]), steps


def test_resume_messages_say_what_really_happened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = build_config(
        "dqn", "CartPole-v1", overrides=[*SETTINGS, "n_timesteps=600", "save_replay_buffer=true"]
    )
    run = start_run(tmp_path, config, "cpu", ["train"])
    train(config, run, TrainOptions(device="cpu"))
    newest, _ = newest_checkpoint(run.checkpoints_dir)
    assert newest is not None and newest.replay_buffer_file is not None
    newest.replay_buffer_file.write_bytes(b"corrupt")  # only the newest keeps the buffer
    code, _, err = _call("train", "--resume", str(run.path), "-n", "700")
    assert code == 0, err
    assert "has no replay buffer (only the newest checkpoint keeps it" in err
    assert "save_replay_buffer: false" not in err

    def no_room(_: object) -> shutil._ntuple_diskusage:
        return shutil._ntuple_diskusage(10 << 30, 10 << 30, 0)

    monkeypatch.setattr(shutil, "disk_usage", no_room)
    before = run.run_file.read_bytes()
    code, _, err = _call("train", "--resume", str(run.path), "-n", "800")
    assert code == 2
    assert f"set save_replay_buffer: false in {run.config_file}" in err and "--set" not in err
    assert run.run_file.read_bytes() == before  # the refused resume recorded nothing


# Without zoo's hook the writer thread's error reaches the thread excepthook (a traceback on
# stderr; under pytest, this warning).
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_full_disk_under_tensorboards_writer_thread_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from tensorboard.summary.writer.record_writer import RecordWriter

    real_write = RecordWriter.write
    records: list[int] = []

    def full_after_a_while(self: RecordWriter, data: bytes) -> None:
        records.append(1)
        if len(records) > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(RecordWriter, "write", full_after_a_while)
    config = build_config("dqn", "CartPole-v1", overrides=[*SETTINGS, "n_timesteps=3000"])
    run = start_run(tmp_path, config, "cpu", ["train"])
    with pytest.raises(UserError) as failure:
        train(config, run, TrainOptions(device="cpu"))
    assert "No space left on device" in str(failure.value)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Exception in thread" not in captured.err
    assert _info(run)["status"] == "failed"
