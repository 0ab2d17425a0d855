"""A submission's Slurm options and the submitit executor that carries them.

The task runs as the batch script's own process (`exec python -m submitit.core._submit`,
no srun), and Slurm's warning before the time limit is asked for as `B:TERM@delay`: it
reaches that process alone, where zoo's SIGTERM handling (a checkpoint at the rollout
boundary) takes it. Sent to a job step instead, it reaches every process of the step, and
the helper processes of an env (SubprocVecEnv's workers) die of it mid-rollout.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.core.errors import UserError, first_line

# submitit's log and pickle names: %j is the job, an array task's is JOB_TASK.
JOB_FOLDER = "%j"
DEFAULT_SIGNAL_DELAY = 120
DEFAULT_MAX_REQUEUES = 3


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time: str | None = None  # Slurm's syntax: MINUTES, H:MM:SS, D-HH
    cpus: int | None = None  # per task; None: the command's default
    gpus: int | None = None
    mem: str | None = None  # Slurm's syntax: 8G, 500M
    array_parallelism: int | None = None
    signal_delay: int = DEFAULT_SIGNAL_DELAY
    max_requeues: int = DEFAULT_MAX_REQUEUES
    dry_run: bool = False
    node_cpus: int = 0  # the most CPUs a node of the partition has (0: not asked)

    def check(self) -> None:
        if self.time is not None and not re.fullmatch(r"(\d+-)?\d+(:\d{1,2}){0,2}", self.time):
            raise UserError(
                f"--slurm-time {self.time!r}: give minutes, H:MM:SS or D-HH:MM:SS (as sbatch --time)"
            )
        if self.mem is not None and not re.fullmatch(r"\d+[KMGT]?B?", self.mem, re.IGNORECASE):
            raise UserError(
                f"--slurm-mem {self.mem!r}: give an amount as sbatch takes it (8G, 500M)"
            )
        for flag, value in (
            ("--slurm-cpus", self.cpus),
            ("--slurm-array-parallelism", self.array_parallelism),
        ):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1")
        if self.gpus is not None and self.gpus < 0:
            raise UserError("--slurm-gpus must be >= 0")
        if self.signal_delay < 10:
            raise UserError("--slurm-signal-delay must be at least 10 seconds")
        if self.max_requeues < 0:
            raise UserError("--slurm-max-requeues must be >= 0")


def task_resources(
    n_envs: int, cnn_policy: bool, device: str, options: SlurmOptions
) -> tuple[int, int]:
    """(CPUs, GPUs) of a task: the options', else one CPU per env (at most what a node of
    the partition has) and a GPU for --device cuda, or for --device auto with a CNN policy
    (on an MLP policy SB3 itself advises the CPU)."""
    cpus = (
        options.cpus
        if options.cpus is not None
        else max(1, min(n_envs, options.node_cpus or n_envs))
    )
    if options.gpus is not None:
        return cpus, options.gpus
    return cpus, int(device == "cuda" or (device == "auto" and cnn_policy))


def sbatch_parameters(
    options: SlurmOptions, job_name: str, cpus: int, gpus: int, tasks: int
) -> dict[str, Any]:
    """submitit's parameters of the submission: one task per cell or worker, each in an
    array task of its own, `cpus` CPUs and `gpus` GPUs each."""
    extra: dict[str, Any] = {"signal": f"B:TERM@{options.signal_delay}", "requeue": True}
    if options.mem is not None:
        extra["mem"] = options.mem
    if options.time is not None:
        extra["time"] = options.time
    parameters: dict[str, Any] = {
        "job_name": job_name,
        "partition": options.partition,
        "time": None,  # submitit's default is 5 minutes; None leaves it to the partition
        "cpus_per_task": cpus,
        "gpus_per_node": gpus or None,
        "array_parallelism": options.array_parallelism or tasks,
        "use_srun": False,
        "wckey": None,  # submitit's default names itself; accounting keys are the site's
        "stderr_to_stdout": True,
        "additional_parameters": extra,
    }
    return parameters


def python_command() -> str:
    """The batch script runs the task as itself (exec), so Slurm's signals reach it."""
    return f"exec {shlex.quote(sys.executable)}"


def sbatch_script(folder: Path, parameters: dict[str, Any], tasks: int) -> str:
    """The script `sbatch` would be given (for --slurm-dry-run), as submitit writes it."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = f"{python_command()} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    return str(
        _make_sbatch_string(
            command=command,
            folder=folder,
            map_count=tasks if tasks > 1 else None,
            **parameters,
        )
    )


def submit_array(
    folder: Path, parameters: dict[str, Any], function: Callable[[Any], Any], tasks: Sequence[Any]
) -> list[str]:
    """One job, an array of one task per item of `tasks` (a plain job for one); the ids of
    its tasks as squeue names them (JOB_TASK)."""
    import submitit

    executor = submitit.SlurmExecutor(folder=folder, python=python_command())
    executor.update_parameters(**parameters)
    try:
        with executor.batch():
            jobs = [executor.submit(function, task) for task in tasks]
    except Exception as error:  # sbatch refused it (partition, resources, limits)
        said = str(error).split("Error:", 1)[-1] if "Error:" in str(error) else str(error)
        raise UserError(f"sbatch refused the job: {first_line(Exception(said.strip()))}") from None
    return [str(job.job_id) for job in jobs]


def log_file(folder: Path, job_ids: Sequence[str]) -> str:
    """Where submitit writes a task's output: <folder>/<task>/<task>_0_log.out."""
    task = job_ids[0] if len(job_ids) == 1 else f"{array_id(job_ids)}_<task>"
    return f"{folder}/{task}/{task}_0_log.out"


def array_id(job_ids: Sequence[str]) -> str:
    return job_ids[0].split("_")[0] if job_ids else "?"
