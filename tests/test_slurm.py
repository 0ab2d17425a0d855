"""`zoo benchmark --slurm` and `zoo tune --slurm N` on a real Slurm cluster.

The cluster is the single-node one of scripts/slurm-test-cluster.sh (which .ci/run starts).
The tests that need it skip only where no controller answers and ZOO_TEST_SLURM is unset;
with ZOO_TEST_SLURM set (as in CI) a missing or broken cluster fails them. Bad input needs
no cluster. Slurm delays a requeued job by about two minutes before it may start again;
the tests let it start at once (`scontrol update StartTime=now`), as an idle cluster would.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
Zoo = Callable[..., subprocess.CompletedProcess[str]]


def _controller_answers() -> bool:
    if shutil.which("scontrol") is None:
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    return "is UP" in ping.stdout


REQUIRED = bool(os.environ.get("ZOO_TEST_SLURM"))
needs_slurm = pytest.mark.skipif(
    not REQUIRED and not _controller_answers(),
    reason="no Slurm controller answers (scontrol ping) and ZOO_TEST_SLURM is unset; start "
    "one with: sudo bash scripts/slurm-test-cluster.sh",
)


def need_submitit() -> None:
    """submitit (zoo[slurm]) or a skip; with ZOO_TEST_SLURM set its absence fails."""
    if REQUIRED:
        import submitit  # noqa: F401
    else:
        pytest.importorskip("submitit", reason="pip install zoo[slurm] for the Slurm tests")


@pytest.fixture
def cluster() -> None:
    """Fails (does not skip) when the cluster that ZOO_TEST_SLURM promises is not there."""
    assert _controller_answers(), "no Slurm controller answers: run scripts/slurm-test-cluster.sh"
    need_submitit()


def zoo_here(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`zoo ARGS` in cwd, with cwd and the repository importable (the jobs inherit it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(cwd)])}
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def job_of(output: str) -> str:
    found = re.search(r"[Ss]ubmitted job (\d+)", output)
    assert found, output
    return found.group(1)


def squeue(job: str, every_state: bool = False) -> list[tuple[str, str, str]]:
    """(task, state, reason) of each task of `job` Slurm has not finished (or, with
    `every_state`, of each it still remembers: the test cluster keeps them 10 minutes)."""
    out = subprocess.run(
        [
            "squeue",
            "-h",
            "-r",
            "-j",
            job,
            "-o",
            "%i %T %r",
            *(["-t", "all"] if every_state else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [tuple(line.split(None, 2)) for line in out.splitlines() if line.strip()]  # type: ignore[misc]


def hurry_requeued(job: str) -> None:
    for task, state, reason in squeue(job):
        if state == "PENDING" and reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"jobid={task}", "StartTime=now"], check=False)


ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


def wait_for_job(job: str, timeout: float = 600) -> None:
    """Until every task of `job` has ended for good, twice in a row a second apart (a task
    between its end and its requeue is briefly in no queue at all)."""
    deadline = time.monotonic() + timeout
    settled = 0
    while settled < 2:
        assert time.monotonic() < deadline, f"job {job} still queued: {squeue(job)}"
        tasks = squeue(job, every_state=True)
        ended = bool(tasks) and all(state in ENDED for _, state, _ in tasks)
        settled = settled + 1 if ended else 0
        hurry_requeued(job)
        time.sleep(0.5 if not ended else 1.0)


def wait_until(condition: Callable[[], bool], timeout: float = 300, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


GRID = ["benchmark", "--algos", "a2c", "dqn", "--envs", "CartPole-v1", "--seeds", "0", "1",
        "-n", "1000", "--eval-games", "2", "--device", "cpu", "--name", "small"]  # fmt: skip
TIMING = {"train_hours", "steps_per_second"}  # wall-clock: the one thing runs do not share


@needs_slurm
@pytest.mark.slow
def test_a_grid_on_slurm_gives_the_rows_of_a_local_run(cluster: None, tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    started = time.monotonic()
    submitted = zoo_here([*GRID, "--log-dir", "shared", "--slurm", "--slurm-cpus", "1"], tmp_path)
    submit_seconds = time.monotonic() - started
    assert submitted.returncode == 0, submitted.stderr
    job = job_of(submitted.stdout)
    assert "4 cell(s)" in submitted.stdout and f"squeue -j {job}" in submitted.stdout
    assert f"/small/slurm/{job}_<task>/{job}_<task>_0_log.out" in submitted.stdout
    assert "--report" in submitted.stdout
    assert len(squeue(job)) >= 1  # returned at once: the tasks are queued or running

    again = zoo_here([*GRID, "--log-dir", "shared", "--slurm", "--slurm-cpus", "1"], tmp_path)
    assert again.returncode == 0, again.stderr  # the same command: nothing submitted twice
    assert "0 to submit" in again.stdout and "Submitted" not in again.stdout, again.stdout

    wait_for_job(job)
    report = zoo_here([*GRID, "--log-dir", "shared", "--report"], tmp_path)
    assert report.returncode == 0, report.stderr
    local = zoo_here([*GRID, "--log-dir", "local"], tmp_path, timeout=600)
    assert local.returncode == 0, local.stderr

    on_slurm = csv_rows(tmp_path / "shared" / "benchmark" / "small" / "results.csv")
    here = csv_rows(tmp_path / "local" / "benchmark" / "small" / "results.csv")
    assert [row["cell"] for row in on_slurm] == [
        f"{algo}_CartPole-v1_seed{seed}" for algo in ("a2c", "dqn") for seed in (0, 1)
    ]
    assert all(row["status"] == "finished" and row["steps"] == "1000" for row in on_slurm)
    assert [{k: v for k, v in row.items() if k not in TIMING} for row in on_slurm] == [
        {k: v for k, v in row.items() if k not in TIMING} for row in here
    ]
    cell = yaml.safe_load(
        (tmp_path / "shared/benchmark/small/a2c_CartPole-v1_seed0/benchmark.yml").read_text()
    )
    assert cell["slurm_job"] == f"{job}_0" and not cell.get("error")
    print(f"submit {submit_seconds:.1f} s")  # the docs' overhead numbers: pytest -s


def _newest_checkpoint(cell: Path) -> int:
    """The step of the cell's newest complete checkpoint (its manifest written last)."""
    found = [
        int(p.parent.name.split("_")[1]) for p in cell.glob("checkpoints/step_*/manifest.json")
    ]
    return max(found, default=0)


def _stopped_steps(log: Path) -> list[int]:
    return [
        int(s.replace(",", "")) for s in re.findall(r"stopped at step ([\d,]+)", log.read_text())
    ]


@needs_slurm
@pytest.mark.slow
def test_a_stopped_cell_is_requeued_and_resumes_at_its_checkpoint(
    cluster: None, tmp_path: Path
) -> None:
    """Slurm's SIGTERM before the time limit (here scancel --batch --signal=TERM, as
    --signal=B:TERM@... sends it) and a requeue by hand (scontrol requeue): each time the
    cell saves a checkpoint where it stopped, and its task goes on from exactly that step."""
    (tmp_path / "shared").mkdir()
    one = ["benchmark", "--algos", "a2c", "--envs", "CartPole-v1", "--seeds", "5", "-n", "100000",
           "--set", "save_freq=2000", "--eval-games", "1", "--device", "cpu", "--name", "long",
           "--log-dir", "shared", "--slurm", "--slurm-cpus", "1"]  # fmt: skip
    submitted = zoo_here(one, tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job = job_of(submitted.stdout)
    cell = tmp_path / "shared/benchmark/long/a2c_CartPole-v1_seed5"
    log = tmp_path / f"shared/benchmark/long/slurm/{job}/{job}_0_log.out"
    assert f"each cell's log: {log}" in submitted.stdout

    wait_until(lambda: _newest_checkpoint(cell) >= 4000, what="a first checkpoint")
    subprocess.run(["scancel", "--batch", "--signal=TERM", job], check=True)
    wait_until(lambda: len(_stopped_steps(log)) == 1, what="the stop")
    wait_until(lambda: squeue(job) and squeue(job)[0][1] == "PENDING", what="the requeue")
    first_stop = _stopped_steps(log)[0]
    assert "requeued" in log.read_text() and _newest_checkpoint(cell) == first_stop

    hurry_requeued(job)
    wait_until(lambda: _newest_checkpoint(cell) >= first_stop + 4000, what="a checkpoint after it")
    subprocess.run(["scontrol", "requeue", job], check=True)
    wait_until(lambda: len(_stopped_steps(log)) == 2, what="the second stop")
    second_stop = _stopped_steps(log)[1]
    assert "left to Slurm" in log.read_text() and _newest_checkpoint(cell) == second_stop

    wait_for_job(job)
    run = yaml.safe_load((cell / "run.yml").read_text())
    assert [entry["from_step"] for entry in run["resumes"]] == [first_stop, second_stop]
    assert run["status"] == "finished" and run["timesteps"] == 100000
    assert f"Resuming {cell} at step {first_stop:,}" in log.read_text()
    info = yaml.safe_load((cell / "benchmark.yml").read_text())
    assert info["slurm_restarts"] == 2 and info["final_evaluation"]["games"] == 1


FAILING_ENV = """\
import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class CrashingCartPole(CartPoleEnv):
    def step(self, action):
        raise RuntimeError("the simulator crashed")


gym.register("ZooCrashingCartPole-v0", entry_point=CrashingCartPole, max_episode_steps=500)
"""


@needs_slurm
@pytest.mark.slow
def test_a_cell_that_keeps_failing_gives_up_with_its_error_in_results(
    cluster: None, tmp_path: Path
) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "zoo_crashing_envs.py").write_text(FAILING_ENV)
    args = ["benchmark", "--algos", "a2c", "--envs", "ZooCrashingCartPole-v0", "--seeds", "0",
            "-n", "500", "--eval-games", "1", "--device", "cpu", "--gym-packages",
            "zoo_crashing_envs", "--log-dir", "shared", "--name", "crash"]  # fmt: skip
    submitted = zoo_here(
        [*args, "--slurm", "--slurm-cpus", "1", "--slurm-max-requeues", "1"], tmp_path
    )
    assert submitted.returncode == 0, submitted.stderr
    job = job_of(submitted.stdout)
    wait_for_job(job)
    log = (tmp_path / f"shared/benchmark/crash/slurm/{job}/{job}_0_log.out").read_text()
    assert log.count("the simulator crashed); requeued") == 1  # one requeue, then it gives up

    report = zoo_here([*args, "--report"], tmp_path)
    assert report.returncode == 0, report.stderr
    (row,) = csv_rows(tmp_path / "shared/benchmark/crash/results.csv")
    assert row["status"] == "failed" and "the simulator crashed" in row["error"]


@needs_slurm
@pytest.mark.slow
def test_two_tune_workers_as_jobs_finish_one_study(cluster: None, tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    tune = ["tune", "--algo", "a2c", "--env", "CartPole-v1", "--trials", "4", "--trial-steps",
            "500", "--evals-per-trial", "1", "--device", "cpu", "--study", "two",
            "--log-dir", "shared"]  # fmt: skip
    submitted = zoo_here([*tune, "--slurm", "2", "--slurm-cpus", "1"], tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job = job_of(submitted.stdout)
    assert "2 worker(s)" in submitted.stdout
    wait_for_job(job)
    logs = [
        (tmp_path / f"shared/tune/two/slurm/{job}_{task}/{job}_{task}_0_log.out").read_text()
        for task in (0, 1)
    ]
    # Both ran on the one study; together they ran each of its four trials once (how they split
    # them depends on when Slurm started each: a late one may find the study done).
    assert all("Job completed successfully" in log for log in logs), logs
    numbers = sorted(int(n) for log in logs for n in re.findall(r"trial (\d+) complete", log))
    assert numbers == [0, 1, 2, 3], logs
    report = zoo_here([*tune, "--report"], tmp_path)
    assert report.returncode == 0, report.stderr


@needs_slurm
@pytest.mark.slow
def test_a_stopped_tune_worker_is_requeued_and_finishes_the_study(
    cluster: None, tmp_path: Path
) -> None:
    (tmp_path / "shared").mkdir()
    tune = ["tune", "--algo", "a2c", "--env", "CartPole-v1", "--trials", "2", "--trial-steps",
            "60000", "--evals-per-trial", "2", "--device", "cpu", "--study", "stop",
            "--log-dir", "shared"]  # fmt: skip
    submitted = zoo_here([*tune, "--slurm", "1", "--slurm-cpus", "1"], tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job = job_of(submitted.stdout)
    log = tmp_path / f"shared/tune/stop/slurm/{job}/{job}_0_log.out"
    trials = tmp_path / "shared/tune/stop/trials"
    wait_until(lambda: any(trials.glob("*/run.yml")), what="a first trial")
    time.sleep(2)
    subprocess.run(["scancel", "--batch", "--signal=TERM", job], check=True)
    wait_until(lambda: log.is_file() and "stopped: requeued" in log.read_text(), what="a requeue")
    wait_for_job(job)
    text = log.read_text()
    assert text.count("Starting with JobEnvironment") == 2, text  # the requeued worker went on
    assert len(re.findall(r"trial \d+ complete", text)) == 2, text  # the study has its two


# --- bad input: one line, exit code 2, nothing submitted --------------------------------------

SMALL = ["benchmark", "--algos", "dqn", "--envs", "CartPole-v1", "--device", "cpu"]


def _one_line_exit_2(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Submitted" not in result.stdout


def test_no_slurm_on_the_path(tmp_path: Path) -> None:
    need_submitit()
    (tmp_path / "shared").mkdir()
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "zoo", *SMALL, "--log-dir", "shared", "--slurm"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    _one_line_exit_2(result, "--slurm: no sbatch on the PATH")
    assert list((tmp_path / "shared").iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--log-dir", "nowhere", "--slurm"], "--log-dir nowhere does not exist"),
        (
            ["--log-dir", "shared", "--slurm-partition", "debug"],
            "--slurm-partition goes with --slurm",
        ),
        (["--log-dir", "shared", "--slurm", "--slurm-time", "soon"], "--slurm-time 'soon'"),
        (["--log-dir", "shared", "--slurm", "--workers", "2"], "drop it for --report"),
    ],
)
def test_bad_slurm_options(in_process: Zoo, tmp_path: Path, extra: list[str], message: str) -> None:
    need_submitit()
    (tmp_path / "shared").mkdir()
    result = in_process(*SMALL, *extra)
    _one_line_exit_2(result, message)
    assert not (tmp_path / "nowhere").exists() and list((tmp_path / "shared").iterdir()) == []


TUNE = ["tune", "--algo", "a2c", "--env", "CartPole-v1", "--trials", "2", "--trial-steps", "100"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--log-dir", "nowhere", "--slurm", "2"], "--log-dir nowhere does not exist"),
        (["--log-dir", "shared", "--slurm", "0"], "--slurm N: give between 1 and 256 workers"),
        (["--log-dir", "shared", "--slurm", "2", "--workers", "2"], "drop it for --report"),
        (["--log-dir", "shared", "--slurm-mem", "8G"], "--slurm-mem goes with --slurm N"),
    ],
)
def test_bad_tune_slurm_options(
    in_process: Zoo, tmp_path: Path, extra: list[str], message: str
) -> None:
    need_submitit()
    (tmp_path / "shared").mkdir()
    _one_line_exit_2(in_process(*TUNE, *extra), message)
    assert list((tmp_path / "shared").iterdir()) == []


def test_without_submitit_one_line_says_what_to_install(
    in_process: Zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    (tmp_path / "shared").mkdir()
    result = in_process(*SMALL, "--log-dir", "shared", "--slurm")
    _one_line_exit_2(result, "pip install zoo[slurm]")
    tune = in_process(*TUNE, "--log-dir", "shared", "--slurm", "2")
    _one_line_exit_2(tune, "pip install zoo[slurm]")
    assert list((tmp_path / "shared").iterdir()) == []


def test_a_dry_run_prints_the_script_and_writes_nothing(in_process: Zoo, tmp_path: Path) -> None:
    need_submitit()
    (tmp_path / "shared").mkdir()
    result = in_process("benchmark", "--algos", "a2c", "dqn", "--envs", "CartPole-v1",
                        "--seeds", "0", "1", "--log-dir", "shared", "--slurm", "--slurm-dry-run",
                        "--slurm-time", "2:00:00", "--slurm-mem", "4G",
                        "--slurm-array-parallelism", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    script = result.stdout
    assert script.startswith("#!/bin/bash")
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --signal=B:TERM@120", "#SBATCH --requeue",
                 "#SBATCH --time=2:00:00", "#SBATCH --mem=4G", "#SBATCH --cpus-per-task="):  # fmt: skip
        assert line in script, script
    assert "\nexec " in script and "srun" not in script  # the task gets Slurm's signal itself
    assert list((tmp_path / "shared").iterdir()) == []


def test_dry_run_cpus_default_to_the_configs_n_envs(in_process: Zoo, tmp_path: Path) -> None:
    need_submitit()
    (tmp_path / "shared").mkdir()
    result = in_process("benchmark", "--algos", "a2c", "--envs", "CartPole-v1", "--set",
                        "n_envs=1", "--log-dir", "shared", "--slurm", "--slurm-dry-run")  # fmt: skip
    assert "#SBATCH --cpus-per-task=1\n" in result.stdout, result.stdout
    assert "--array" not in result.stdout and "--gpus" not in result.stdout


@needs_slurm
def test_an_unknown_partition(cluster: None, in_process: Zoo, tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    result = in_process(*SMALL, "--log-dir", "shared", "--slurm", "--slurm-partition", "nope")
    _one_line_exit_2(result, "--slurm-partition nope: no such partition; this cluster has debug")
    assert list((tmp_path / "shared").iterdir()) == []


# --- the task's decisions, without a cluster -------------------------------------------------


def test_a_claim_held_by_a_live_job_stops_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.cluster import requeue, slurm
    from zoo.core.errors import UserError

    monkeypatch.setenv("SLURM_JOB_ID", "200")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    cell = tmp_path / "cell"
    cell.mkdir()
    (cell / requeue.CLAIM_FILE).write_text("100_3\n")
    monkeypatch.setattr(slurm, "alive", lambda jobs: set(jobs) & {"100_3"})
    with (
        pytest.raises(UserError, match="cell x is being trained by Slurm job 100_3"),
        requeue.claimed(cell, "cell x"),
    ):
        pass
    assert (cell / requeue.CLAIM_FILE).read_text() == "100_3\n"  # left alone

    monkeypatch.setattr(slurm, "alive", lambda jobs: set())  # that job is gone: taken over
    with requeue.claimed(cell, "cell x"):
        assert (cell / requeue.CLAIM_FILE).read_text() == "200\n"
    assert not (cell / requeue.CLAIM_FILE).exists()


@pytest.mark.parametrize(
    ("state", "failures", "expected", "requeued"),
    [
        ("RUNNING", 1, "requeued", True),  # Slurm's warning, or scancel --signal=TERM
        ("RUNNING", 4, "gave up", False),  # past --slurm-max-requeues 3
        ("PENDING", 1, "left to Slurm", False),  # scontrol requeue, preemption: Slurm's own
        ("CANCELLED", 1, "left to Slurm", False),  # scancel: stays cancelled
    ],
)
def test_a_stopped_task_requeues_only_a_running_job(
    monkeypatch: pytest.MonkeyPatch, state: str, failures: int, expected: str, requeued: bool
) -> None:
    from zoo.cluster import requeue, slurm

    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    calls: list[str] = []
    monkeypatch.setattr(slurm, "job_states", lambda jobs: {"7_2": state})
    monkeypatch.setattr(slurm, "requeue", calls.append)
    assert requeue.requeue_after_stop(max_requeues=3, failures=failures) == expected
    assert calls == (["7_2"] if requeued else [])


def test_a_filesystem_without_file_locks_trains_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lustre without its flock mount option answers flock with ENOSYS: a note, not a crash."""
    import errno
    import fcntl

    from zoo.runs.folders import Run, training_lock

    def no_locks(handle: object, operation: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    (tmp_path / "run").mkdir()
    with training_lock(Run(tmp_path / "run")):
        pass
    assert "takes no file locks (Function not implemented)" in capsys.readouterr().err
