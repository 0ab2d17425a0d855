"""What a Slurm task does when it is stopped or fails, and its claim on a cell's folder.

Stopped (Slurm's signal before the time limit, `scancel --batch --signal=TERM`, a preemption):
zoo's SIGTERM handling has saved a checkpoint at the rollout boundary; a job still running
is requeued (`scontrol requeue`) and its task starts again from that checkpoint. A job that
Slurm requeues itself (`scontrol requeue`, preemption in REQUEUE mode) or that was cancelled
is left to Slurm. Each requeue after which the cell made no progress, and each failure,
counts; past `max_requeues` of them the task gives up and its error stays in the cell's
benchmark.yml, whence results.csv shows it.

The claim: a file in the cell's folder created atomically (O_EXCL, which NFS, Lustre and
GPFS honour across nodes, where flock may not be) that names the Slurm job training the
cell; another job finds it and stops, unless the job it names is no longer alive.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from zoo.cluster import slurm
from zoo.core.errors import UserError

CLAIM_FILE = "slurm.claim"


def requeue_after_stop(max_requeues: int, failures: int) -> str:
    """Requeue this job after a stop; returns what happened, for the cell's record:
    "requeued", "left to Slurm" (cancelled, or already requeued by Slurm) or "gave up"."""
    job = slurm.current_job()
    if job is None:
        return "left to Slurm"
    state = slurm.job_states([job]).get(job)
    if state != "RUNNING":
        return "left to Slurm"
    if failures > max_requeues:
        return "gave up"
    try:
        slurm.requeue(job)
    except UserError:  # Slurm ended or requeued it meanwhile
        return "left to Slurm"
    return "requeued"


@contextlib.contextmanager
def claimed(folder: Path, what: str) -> Iterator[None]:
    """Hold the cell's claim for this Slurm job while the block runs."""
    job = slurm.current_job() or f"pid {os.getpid()}"
    claim = folder / CLAIM_FILE
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            handle = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(claim)
            if holder not in (None, job) and holder in slurm.alive([holder]):
                raise UserError(
                    f"{what} is being trained by Slurm job {holder}; wait for it or scancel it"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()  # our own (a requeued task) or a dead job's
            continue
        with os.fdopen(handle, "w") as file:
            file.write(job + "\n")
        break
    try:
        yield
    finally:
        if _holder(claim) == job:
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()


def _holder(claim: Path) -> str | None:
    try:
        return claim.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
