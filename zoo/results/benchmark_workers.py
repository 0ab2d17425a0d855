"""The processes of `zoo benchmark`: the named cells of a grid run one after another, or
`--workers` at a time, each in a process of its own that rebuilds its cell, reports its
outcome to the parent, and stops at its step boundary with a checkpoint when the parent is
stopped or gone.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from multiprocessing import get_context
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from pathlib import Path

from zoo.core.errors import UserError
from zoo.core.interrupts import Terminated, stop_when_orphaned
from zoo.envs.gym_packages import import_gym_packages
from zoo.results.benchmark import CellOutcome, Grid, grid_cells, run_cell, select_cells


def run_cells(
    grid: Grid,
    grid_dir: Path,
    names: Sequence[str],
    eval_games: int,
    device: str,
    workers: int,
    quiet: bool,
) -> list[CellOutcome]:
    """Each named cell in turn, or `workers` cells side by side in processes of their own.
    A Ctrl-C stops every cell at its step boundary with a checkpoint."""
    argv = tuple(sys.argv[2:])
    if workers <= 1 or len(names) <= 1:
        outcomes = []
        for name in names:
            outcomes.append(run_named_cell(grid, grid_dir, name, eval_games, device, argv, quiet))
            if outcomes[-1].state == "interrupted":
                break
        return outcomes
    return _run_cells_in_processes(grid, grid_dir, names, eval_games, device, argv, quiet, workers)


def _run_cells_in_processes(
    grid: Grid,
    grid_dir: Path,
    names: Sequence[str],
    eval_games: int,
    device: str,
    argv: Sequence[str],
    quiet: bool,
    workers: int,
) -> list[CellOutcome]:
    """Each cell in a process of its own, `workers` at a time. A process that dies (kill -9,
    out of memory) is named in one line and the others go on: a process pool broke as a
    whole and took its other cells down with it. A Ctrl-C or SIGTERM here reaches every
    cell, which stops at its step boundary with a checkpoint, and is raised once they have."""
    context = get_context("spawn")
    reports = context.SimpleQueue()
    waiting = list(names)
    running: dict[object, tuple[str, BaseProcess]] = {}  # by the process's sentinel
    outcomes: dict[str, CellOutcome] = {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                name = waiting.pop(0)
                started: BaseProcess = context.Process(
                    target=_cell_process,
                    args=(
                        grid,
                        grid_dir,
                        name,
                        eval_games,
                        device,
                        argv,
                        quiet,
                        reports,
                        os.getpid(),
                    ),
                    name=name,
                )
                started.start()
                running[started.sentinel] = (name, started)
            for sentinel in wait(list(running)):  # type: ignore[arg-type]
                name, ended = running.pop(sentinel)
                ended.join()
                _collect(reports, outcomes)
                if name not in outcomes:
                    outcomes[name] = _died(name, ended.exitcode)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, Terminated):  # a terminal's Ctrl-C reaches every cell itself
            for _, cell_process in running.values():
                if cell_process.pid is not None and cell_process.exitcode is None:
                    os.kill(cell_process.pid, signal.SIGTERM)
        for _, cell_process in running.values():
            cell_process.join()
        raise
    _collect(reports, outcomes)
    return [outcomes[name] for name in names]


def _collect(reports: SimpleQueue[CellOutcome], outcomes: dict[str, CellOutcome]) -> None:
    while not reports.empty():
        outcome = reports.get()
        outcomes[outcome.name] = outcome


def _died(name: str, exit_code: int | None) -> CellOutcome:
    """One line for a cell whose process ended without reporting (killed, crashed)."""
    how = (
        f"killed by {signal.Signals(-exit_code).name}"
        if exit_code is not None and exit_code < 0
        else f"exit code {exit_code}"
    )
    print(
        f"zoo: cell {name} died ({how}); the other cells go on. Run the same command again "
        "to resume it from its newest checkpoint",
        file=sys.stderr,
        flush=True,
    )
    return CellOutcome(name, "died", exit_code=1)


def _cell_process(
    grid: Grid,
    grid_dir: Path,
    name: str,
    eval_games: int,
    device: str,
    argv: Sequence[str],
    quiet: bool,
    reports: SimpleQueue[CellOutcome],
    parent: int,
) -> None:
    """A cell's process: zoo's own signal handling, a life tied to the parent's, and its
    outcome reported to the parent (errors as one line, as the command would print them)."""
    from zoo.core.errors import one_line
    from zoo.core.interrupts import exit_code_of, own_stop_signals

    own_stop_signals()  # a spawned process starts with SIGTERM's default: death, unsaved
    stop_when_orphaned(parent)
    try:
        outcome = run_named_cell(grid, grid_dir, name, eval_games, device, argv, quiet)
    except UserError as error:
        print(f"zoo: error: [{name}] {one_line(str(error))}", file=sys.stderr, flush=True)
        outcome = CellOutcome(name, "failed", exit_code=2)
    except KeyboardInterrupt as interrupt:  # before or after training, where it is no stop
        outcome = CellOutcome(name, "interrupted", exit_code_of(interrupt))
    reports.put(outcome)


def run_named_cell(
    grid: Grid,
    grid_dir: Path,
    name: str,
    eval_games: int,
    device: str,
    argv: Sequence[str],
    quiet: bool,
) -> CellOutcome:
    # A worker process rebuilds its cell: a Config (read-only mappings) does not pickle.
    import_gym_packages(grid.gym_packages)
    (cell,) = select_cells(grid_cells(grid, grid_dir), [name])
    return run_cell(cell, eval_games, device, argv, quiet, grid.tracking)
