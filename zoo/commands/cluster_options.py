"""The --slurm-* options `zoo benchmark` and `zoo tune` share, and their checks before
anything is written or submitted."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.cluster.jobs import SlurmOptions

SLURM_EPILOG = """\
on a Slurm cluster (pip install zoo[slurm]): --slurm submits the work as a job array through
submitit and returns; --log-dir must be a folder on the cluster's shared filesystem. Slurm's
SIGTERM before the time limit (--slurm-signal-delay) saves a checkpoint and requeues the task,
which resumes from it. See docs/guide/cluster.md.
"""
# Options that take a value: how the same command without them is shown.
_VALUED = {"--slurm-partition", "--slurm-time", "--slurm-cpus", "--slurm-gpus", "--slurm-mem",
           "--slurm-array-parallelism", "--slurm-signal-delay", "--slurm-max-requeues"}  # fmt: skip


def add_slurm_options(parser: argparse.ArgumentParser, array: bool) -> None:
    """The Slurm options; `array`: the work is many tasks that may run side by side."""
    group = parser.add_argument_group("on a Slurm cluster")
    group.add_argument("--slurm-partition", metavar="NAME", help="default: the cluster's default partition")  # fmt: skip
    group.add_argument("--slurm-time", metavar="TIME",
                       help="each task's time limit, as sbatch --time (default: the partition's)")  # fmt: skip
    group.add_argument("--slurm-cpus", type=int, metavar="N",
                       help="CPUs per task (default: the config's n_envs, at most a node's)")  # fmt: skip
    group.add_argument("--slurm-gpus", type=int, metavar="N",
                       help="GPUs per task (default: 1 for --device cuda, or auto with a CNN policy; else 0)")  # fmt: skip
    group.add_argument("--slurm-mem", metavar="MEM", help="memory per task, as sbatch --mem (8G)")
    if array:
        group.add_argument("--slurm-array-parallelism", type=int, metavar="K",
                           help="tasks running at once (default: all)")  # fmt: skip
    group.add_argument("--slurm-signal-delay", type=int, metavar="SECONDS",
                       help="SIGTERM this long before the time limit: checkpoint and requeue (default 120)")  # fmt: skip
    group.add_argument("--slurm-max-requeues", type=int, metavar="N",
                       help="a task failing (or stopped without progress) more often gives up (default 3)")  # fmt: skip
    group.add_argument("--slurm-dry-run", action="store_true",
                       help="print the sbatch script instead of submitting it")  # fmt: skip


def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    """The options, checked with the machine: submitit installed, Slurm on the PATH (not for
    a dry run), an existing --log-dir. Nothing is written or submitted before."""
    from zoo.cluster import slurm
    from zoo.cluster.jobs import DEFAULT_MAX_REQUEUES, DEFAULT_SIGNAL_DELAY, SlurmOptions
    from zoo.core.errors import UserError

    options = SlurmOptions(
        partition=args.slurm_partition,
        time=args.slurm_time,
        cpus=args.slurm_cpus,
        gpus=args.slurm_gpus,
        mem=args.slurm_mem,
        array_parallelism=getattr(args, "slurm_array_parallelism", None),
        signal_delay=_or(args.slurm_signal_delay, DEFAULT_SIGNAL_DELAY),
        max_requeues=_or(args.slurm_max_requeues, DEFAULT_MAX_REQUEUES),
        dry_run=args.slurm_dry_run,
    )
    options.check()
    slurm.require_submitit()
    if not options.dry_run:
        slurm.require_slurm()
    if not options.dry_run or shutil.which("sinfo"):  # a dry run needs no Slurm here
        partition, node_cpus = slurm.check_partition(options.partition)
        options = dataclasses.replace(options, partition=partition, node_cpus=node_cpus)
    log_dir: Path = args.log_dir
    if not log_dir.is_dir():
        raise UserError(
            f"--log-dir {log_dir} does not exist; with --slurm it must be a folder on the "
            "cluster's shared filesystem (seen by every node): create it there first"
        )
    return options


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def given_slurm_option(args: argparse.Namespace) -> str | None:
    """The first --slurm-* option on the command line, as written."""
    for name, value in vars(args).items():
        if name.startswith("slurm_") and value not in (None, False):
            return f"--{name.replace('_', '-')}"
    return None


def warn_if_not_shared(log_dir: Path, partition: str | None) -> None:
    """A note when --log-dir is on a local filesystem and the partition has other nodes."""
    from zoo.cluster import slurm

    kind = slurm.filesystem_type(log_dir)
    if kind is None or kind in slurm.SHARED_FILESYSTEMS or slurm.node_count(partition) <= 1:
        return
    print(
        f"zoo: note: --log-dir {log_dir} is on a local filesystem ({kind}); tasks on other "
        "nodes will not see it. Give a folder on the cluster's shared filesystem",
        flush=True,
    )


def without_slurm_options(argv: Sequence[str], slurm_takes_value: bool) -> str:
    """The command line without its Slurm options, for the line that says how to go on."""
    kept: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if name.startswith("--slurm"):
            skip = "=" not in token and (
                name in _VALUED or (name == "--slurm" and slurm_takes_value)
            )
            continue
        kept.append(token)
    return shlex.join(kept)
