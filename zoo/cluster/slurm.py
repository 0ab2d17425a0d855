"""What this machine's Slurm is and says: its commands on the PATH, its partitions, the
states of jobs, and a job's requeue. Every call is one of Slurm's own commands (sinfo,
squeue, scontrol), so zoo needs nothing of Slurm but its client tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from zoo.core.errors import UserError, first_line

# States in which a job is queued, runs or is about to run again: its cell is in flight.
ALIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "PREEMPTED",
    }
)
# Network and cluster filesystems: a --log-dir on one of them is seen by every node.
SHARED_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "glusterfs", "fuse.glusterfs",
     "panfs", "wekafs", "fuse.sshfs", "cifs", "smb3", "9p", "virtiofs"}
)  # fmt: skip
QUERY_SECONDS = 60


def require_submitit() -> None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError(
            "--slurm needs submitit: pip install zoo[slurm] (or pip install submitit)"
        ) from None


def require_slurm() -> None:
    """Slurm's client commands must be on the PATH of the machine that submits."""
    missing = [name for name in ("sbatch", "squeue", "sinfo", "scontrol") if not shutil.which(name)]
    if missing:
        raise UserError(
            f"--slurm: no {missing[0]} on the PATH; run zoo on a Slurm login node (or load "
            "Slurm's module), or drop --slurm to train here"
        )


def _slurm(command: Sequence[str]) -> str:
    """A Slurm command's output; its failure as one line."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=QUERY_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError(f"{command[0]} failed: {first_line(error)}") from None
    if done.returncode != 0:
        said = first_line(Exception(done.stderr or done.stdout or f"exit code {done.returncode}"))
        raise UserError(f"{' '.join(command[:2])}: {said}")
    return done.stdout


def partitions() -> tuple[dict[str, int], str | None]:
    """Each partition with the most CPUs one of its nodes has, and the default partition
    (sinfo marks it with a '*'; None where none is)."""
    cpus: dict[str, int] = {}
    default = None
    for line in _slurm(["sinfo", "-h", "-o", "%P %c"]).splitlines():
        marked, _, count = line.partition(" ")
        name = marked.rstrip("*")
        if marked.endswith("*"):
            default = name
        digits = "".join(ch for ch in count if ch.isdigit())
        cpus[name] = max(cpus.get(name, 0), int(digits or 0))
    return cpus, default


def check_partition(name: str | None) -> tuple[str | None, int]:
    """(the partition jobs go to, the most CPUs of one of its nodes); an unknown name is a
    UserError naming the known ones."""
    known, default = partitions()
    chosen = name if name is not None else default
    if chosen is None:  # no partition named and none is the default: Slurm's choice
        return None, max(known.values(), default=0)
    if chosen not in known:
        raise UserError(
            f"--slurm-partition {chosen}: no such partition; this cluster has "
            f"{', '.join(sorted(known)) or 'none'} (see sinfo)"
        )
    return chosen, known[chosen]


def job_states(job_ids: Iterable[str]) -> dict[str, str]:
    """The state of each job squeue still knows ({} for jobs it forgot: long finished)."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    done = subprocess.run(
        ["squeue", "-h", "-a", "-r", "-o", "%i %T", "-j", ",".join(wanted)],
        capture_output=True,
        text=True,
        timeout=QUERY_SECONDS,
        check=False,
    )
    states = {}
    for line in done.stdout.splitlines():  # squeue fails when it knows none of the ids
        job, _, state = line.strip().partition(" ")
        states[job] = state
    return states


def alive(job_ids: Iterable[str]) -> set[str]:
    return {job for job, state in job_states(job_ids).items() if state in ALIVE_STATES}


def current_job() -> str | None:
    """This process's Slurm job as squeue names it (array tasks as JOB_TASK), or None."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def restarts() -> int:
    """How many times Slurm has requeued this job so far."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def requeue(job: str) -> None:
    _slurm(["scontrol", "requeue", job])


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem `path` is on, from /proc/mounts (Linux), or None."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    resolved, best, kind = str(path.resolve()), "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fields[2]
    return kind


def node_count(partition: str | None) -> int:
    command = ["sinfo", "-h", "-o", "%D"] + (["-p", partition] if partition else [])
    return sum(int(n) for n in _slurm(command).split() if n.isdigit())
