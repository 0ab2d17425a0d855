"""`zoo benchmark --slurm`: each cell of the grid one task of a Slurm job array.

The submission skips the cells that are finished and those whose job is still queued or
running (grid_dir/slurm/jobs.yml names each cell's job), so the same command run again
submits only what is left, as a local re-run trains only what is left. Each task trains its
cell exactly as `zoo benchmark` does here (run_cell: the same folder, resume, evaluation);
results.csv is written from the cells' folders by `--report`, whenever it is run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
from zoo.cluster.requeue import claimed, requeue_after_stop
from zoo.core.atomic import atomic_write_text
from zoo.core.errors import UserError, one_line
from zoo.core.yamlio import dump_yaml, read_yaml_file
from zoo.results.benchmark import Cell, CellOutcome, Grid, read_cell_info, update_cell_info

JOBS_FILE = "jobs.yml"


@dataclasses.dataclass(frozen=True)
class CellTask:
    """What one array task needs to train its cell (a Config does not pickle: the task
    rebuilds its cell from the grid)."""

    grid: Grid
    grid_dir: Path  # absolute: the task starts in the submitting folder, but may not stay
    cell: str
    eval_games: int
    device: str  # as given (auto, cpu, cuda): resolved on the node
    argv: tuple[str, ...]
    max_requeues: int


def run_cell_task(task: CellTask) -> str:
    """The job function: train and evaluate the cell; requeue or give up when stopped."""
    from zoo.core.interrupts import own_stop_signals
    from zoo.results.benchmark_workers import run_named_cell
    from zoo.training.model_setup import resolve_device

    own_stop_signals()  # submitit's handler ignores SIGTERM; zoo's saves a checkpoint
    folder = task.grid_dir / task.cell
    with claimed(folder, f"cell {task.cell}"):
        before = _steps(folder)
        update_cell_info(folder, slurm_job=slurm.current_job(), slurm_restarts=slurm.restarts())
        try:
            device = resolve_device(task.device)
            outcome = run_named_cell(
                task.grid, task.grid_dir, task.cell, task.eval_games, device, task.argv, False
            )
        except KeyboardInterrupt:  # stopped before or after training, where nothing is lost
            outcome = CellOutcome(task.cell, "interrupted", 143)
        except Exception as error:
            failures = int(read_cell_info(folder).get("slurm_failures") or 0) + 1
            message = one_line(f"{type(error).__name__}: {error}")
            update_cell_info(folder, slurm_failures=failures, last_failure=message)
            retry = not isinstance(error, UserError)  # a setting stays wrong when run again
            if retry and requeue_after_stop(task.max_requeues, failures) == "requeued":
                print(f"zoo: [{task.cell}] failed ({message}); requeued", flush=True)
                return "requeued"
            update_cell_info(folder, error=message)  # gave up: results.csv says why
            raise
        if outcome.state != "interrupted":
            update_cell_info(folder, slurm_failures=0, last_failure=None, error=None)
            return outcome.state
        failures = (
            0
            if _steps(folder) > before
            else int(read_cell_info(folder).get("slurm_failures") or 0) + 1
        )
        update_cell_info(folder, slurm_failures=failures)
        what = requeue_after_stop(task.max_requeues, failures)
        if what == "gave up":
            update_cell_info(
                folder,
                error=f"stopped {failures} times in a row without progress; gave up after "
                f"{task.max_requeues} requeues",
            )
        print(f"zoo: [{task.cell}] stopped at step {_steps(folder):,}: {what}", flush=True)
        return what


def _steps(folder: Path) -> int:
    from zoo.runs.folders import Run

    if not (folder / "run.yml").is_file():
        return 0
    return int(Run(folder).read_info().get("timesteps") or 0)


def is_finished(cell: Cell, eval_games: int) -> bool:
    if not cell.run_file.is_file():
        return False
    from zoo.runs.folders import Run

    info = Run(cell.path).read_info()
    evaluation = read_cell_info(cell.path).get("final_evaluation")
    return (
        info.get("status") == "finished"
        and int(info.get("timesteps") or 0) >= cell.config.n_timesteps
        and isinstance(evaluation, dict)
        and evaluation.get("games") == eval_games
    )


def cell_resources(cells: Sequence[Cell], device: str, options: SlurmOptions) -> tuple[int, int]:
    """(CPUs, GPUs) of each task, for the widest cell (see task_resources)."""
    widest = max((cell.config.n_envs for cell in cells), default=1)
    pixels = any("Cnn" in cell.config.policy for cell in cells)
    return task_resources(widest, pixels, device, options)


def submit_benchmark(
    grid: Grid,
    grid_dir: Path,
    cells: Sequence[Cell],
    eval_games: int,
    device: str,
    options: SlurmOptions,
    argv: Sequence[str],
    say: Callable[[str], None],
) -> list[str]:
    """Submit the cells left to train as one job array; the ids of its tasks ([] when every
    cell is finished or in flight). With `options.dry_run`, print the script instead."""
    grid_dir = grid_dir.resolve()
    folder = grid_dir / "slurm"
    partition = options.partition
    cpus, gpus = cell_resources(cells, device, options)
    known = read_jobs(folder)
    in_flight = slurm.alive(known[cell.name] for cell in cells if cell.name in known)
    flying = [cell.name for cell in cells if known.get(cell.name) in in_flight]
    done = [
        cell.name for cell in cells if cell.name not in flying and is_finished(cell, eval_games)
    ]
    todo = [cell for cell in cells if cell.name not in flying and cell.name not in done]
    parameters = sbatch_parameters(options, f"zoo-benchmark-{grid.name}", cpus, gpus, len(todo))
    if options.dry_run:
        print(sbatch_script(folder / "%j", parameters, max(1, len(todo))), end="")
        return []
    say(f"Benchmark {grid.name}: {len(done)} finished, {len(flying)} queued or running, "
        f"{len(todo)} to submit")  # fmt: skip
    if not todo:
        return []
    for cell in todo:
        if read_cell_info(cell.path).get("slurm_failures"):
            update_cell_info(cell.path, slurm_failures=0)  # submitted again: a fresh count
    tasks = [
        CellTask(grid, grid_dir, cell.name, eval_games, device, tuple(argv), options.max_requeues)
        for cell in todo
    ]
    jobs = submit_array(folder / "%j", parameters, run_cell_task, tasks)
    write_jobs(folder, {**known, **{cell.name: job for cell, job in zip(todo, jobs, strict=True)}})
    job = array_id(jobs)
    where = f"partition {partition}" if partition else "the default partition"
    say(
        f"Submitted job {job}: {len(jobs)} cell(s) on {where}, {cpus} CPU(s) and {gpus} GPU(s) each"
    )
    say(f"Follow it: squeue -j {job}    each cell's log: {log_file(folder, jobs)}")
    return jobs


def read_jobs(folder: Path) -> dict[str, str]:
    path = folder / JOBS_FILE
    if not path.is_file():
        return {}
    saved: Any = read_yaml_file(path, what="Slurm jobs file")
    return {str(k): str(v) for k, v in saved.items()} if isinstance(saved, dict) else {}


def write_jobs(folder: Path, jobs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / JOBS_FILE, dump_yaml(jobs))
