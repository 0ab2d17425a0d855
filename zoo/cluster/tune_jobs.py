"""`zoo tune --slurm N`: N tuning workers as the tasks of one Slurm job array.

The study is created (or joined, with its settings checked) here before anything is
submitted; each task is then one `zoo tune` worker on the same storage (the journal file on
the shared filesystem, or PostgreSQL), with the same options and the same heartbeat and
retry rules as a worker started by hand: it takes trials until the study has its total.
A worker stopped by Slurm ends its trial as a local one does on SIGTERM (the trial is
marked failed and runs again) and its job is requeued, at most --slurm-max-requeues times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from zoo.cluster import slurm
from zoo.cluster.jobs import (
    SlurmOptions,
    array_id,
    log_file,
    sbatch_parameters,
    sbatch_script,
    submit_array,
    task_resources,
)
from zoo.cluster.requeue import requeue_after_stop
from zoo.tune.study import TuneSettings


@dataclasses.dataclass(frozen=True)
class WorkerTask:
    settings: TuneSettings  # one worker; the device as given, resolved on the node
    index: int
    max_requeues: int


def run_tune_worker(task: WorkerTask) -> int:
    """The job function: one worker's trials; requeued when Slurm stops it."""
    from zoo.core.interrupts import own_stop_signals
    from zoo.envs.gym_packages import import_gym_packages
    from zoo.training.model_setup import resolve_device
    from zoo.tune.study import run_worker

    own_stop_signals()  # submitit's handler ignores SIGTERM; zoo's ends the trial cleanly
    settings = dataclasses.replace(task.settings, device=resolve_device(task.settings.device))
    try:
        import_gym_packages(settings.gym_packages)
        return len(run_worker(settings))
    except KeyboardInterrupt:
        # Each requeue counts: a worker only stops between trials, so it has nothing to resume.
        what = requeue_after_stop(task.max_requeues, slurm.restarts() + 1)
        print(f"zoo: tune worker {task.index} stopped: {what}", flush=True)
        return 0


def submit_tune(
    settings: TuneSettings,
    workers: int,
    options: SlurmOptions,
    say: Callable[[str], None],
) -> list[str]:
    """Create or join the study, then submit `workers` workers (one job array); their ids.
    With `options.dry_run`, print the script instead (nothing is created)."""
    from zoo.tune.study import check_settings, prepare_study

    settings = dataclasses.replace(settings, log_dir=settings.log_dir.resolve())
    partition = options.partition
    config = settings.base_config()
    cpus, gpus = task_resources(config.n_envs, "Cnn" in config.policy, settings.device, options)
    parameters = sbatch_parameters(
        options, f"zoo-tune-{settings.study_name}", cpus, gpus, tasks=workers
    )
    folder = settings.study_dir / "slurm"
    if options.dry_run:
        check_settings(settings)
        print(sbatch_script(folder / "%j", parameters, workers), end="")
        return []
    storage, _ = prepare_study(settings)  # workers: how many will share the storage
    one = dataclasses.replace(settings, workers=1)
    tasks: Sequence[WorkerTask] = [
        WorkerTask(one, index, options.max_requeues) for index in range(workers)
    ]
    jobs = submit_array(folder / "%j", parameters, run_tune_worker, tasks)
    job = array_id(jobs)
    where = f"partition {partition}" if partition else "the default partition"
    say(
        f"Study {settings.study_name} in {storage.shown}: {settings.trials} trials of "
        f"{settings.trial_steps:,} steps; submitted job {job}, {len(jobs)} worker(s) on {where}, "
        f"{cpus} CPU(s) and {gpus} GPU(s) each"
    )
    say(f"Follow it: squeue -j {job}    each worker's log: {log_file(folder, jobs)}")
    return jobs
