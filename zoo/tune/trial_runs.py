"""Several seeds per trial (`zoo tune --seeds-per-trial K`): K runs of one trial, in lockstep.

Each run trains through the same `train` in a spawned process of its own (its own random
generators, signal handlers and torch threads, so a run gives the numbers `zoo train --seed`
gives), in `<trial folder>/seed_<j>`. Run j of a trial whose seed is S has the seed
S + j * SEED_STRIDE: run 0 keeps the seed a one-seed trial has, and no two runs of the first
SEED_STRIDE trials share a seed.

The worker that holds the Optuna trial moves the runs evaluation by evaluation: a run that
has evaluated waits there until every run of the trial has evaluated at that step; the worker
then reports the mean of their evaluation means (one value per step, as Optuna wants), asks
the pruner, and tells every run to go on or to stop. So the pruner sees the mean over all the
seeds, and a pruned trial stops all its runs at the same step. At most `at_once` runs train at
a time (the worker's share of the cores): with fewer cores than seeds, the runs take turns
between two evaluations, one after another, still in lockstep. All K runs (and their replay
buffers) are alive for the whole trial.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import scipy.stats
import torch as th
from optuna.trial import TrialState
from stable_baselines3.common.base_class import BaseAlgorithm

from zoo.config.layers import Layer
from zoo.core.errors import UserError
from zoo.core.interrupts import stop_when_orphaned
from zoo.core.threads import cores
from zoo.envs.gym_packages import import_gym_packages
from zoo.runs.evaluation import EvaluationResult
from zoo.runs.folders import Run, write_run_files
from zoo.runs.tracking import Tracking
from zoo.schema.names import TRIAL_OBJECTIVES
from zoo.training.train import TrainOptions, train

if TYPE_CHECKING:
    from zoo.tune.study import TuneSettings

SEED_STRIDE = 10_000
MAX_SEEDS_PER_TRIAL = 64
SEED_RUNS_ATTR = "seed_runs"
TRIAL_OBJECTIVE_ATTR = "trial_objective"
GO, STOP = "go", "stop"
# Seconds between a run's looks at whether its worker is still alive.
WORKER_WATCH_SECONDS = 1.0
# Seconds the worker waits for a run to end after the trial ended before killing it.
END_WAIT_SECONDS = 60.0


def seed_of_run(trial_seed: int, run: int) -> int:
    """Run 0 keeps the trial's seed; no two runs of the first SEED_STRIDE trials share one."""
    return trial_seed + run * SEED_STRIDE


def check_seed_settings(settings: TuneSettings) -> None:
    if not 1 <= settings.seeds_per_trial <= MAX_SEEDS_PER_TRIAL:
        raise UserError(f"--seeds-per-trial must be between 1 and {MAX_SEEDS_PER_TRIAL}")
    if settings.trial_objective not in TRIAL_OBJECTIVES:
        raise UserError(f"--trial-objective: choose one of {', '.join(TRIAL_OBJECTIVES)}")


def seeds_identity(settings: TuneSettings) -> dict[str, Any]:
    """What a study with several seeds per trial records, so that no worker joins it with
    other ones; a one-seed study keeps the identity it always had (older studies resume)."""
    if settings.seeds_per_trial == 1:
        return {}
    return {
        "seeds_per_trial": settings.seeds_per_trial,
        "trial_objective": settings.trial_objective,
    }


def trial_layers(
    settings: TuneSettings, values: dict[str, Any], number: int, run: int = 0
) -> tuple[Layer, ...]:
    """A trial's values and what tune sets itself, on top of your config; `run`: which of
    the trial's runs (its seed is the trial's seed + run * SEED_STRIDE)."""
    base_seed = settings.seed if settings.seed is not None else 0
    controlled = {
        "n_timesteps": settings.trial_steps,
        "seed": seed_of_run(base_seed + number, run),
        "eval_freq": settings.eval_freq(),
        "save_freq": 0,
        "keep_checkpoints": 1,
    }
    return (Layer(f"search space, trial {number}", values), Layer("zoo tune", controlled))


def run_trial_seeds(
    trial: optuna.Trial, settings: TuneSettings, values: dict[str, Any], folder: Path
) -> SeedRunsEnd:
    """Train the trial's runs in `folder/seed_<j>` in lockstep; record them in the trial."""
    at_once, threads = runs_at_once(settings.seeds_per_trial, settings.workers)
    tracking = settings.trial_tracking
    specs = []
    for j in range(settings.seeds_per_trial):
        layers = trial_layers(settings, values, trial.number, j)
        run = Run(folder / f"seed_{j}")
        run.path.mkdir()
        config = settings.base_config(layers)
        write_run_files(run, config, settings.device, ("tune", *settings.argv))
        spec = SeedRunSpec(
            settings, layers, run.path, tracking, threads, config.seed, config.to_dict()
        )
        specs.append(spec)
    lockstep = Lockstep(trial, start_seed_runs(specs), at_once, settings.pruner)
    try:
        lockstep.run()
    finally:
        end_processes(lockstep.runs)
    return finish(lockstep, trial, settings.trial_objective)


def later_half_mean(evaluations: Sequence[tuple[int, float]]) -> float | None:
    """A run's score: the mean of the later half of its evaluations (one is too noisy)."""
    if not evaluations:
        return None
    later = evaluations[len(evaluations) // 2 :]
    return sum(mean for _, mean in later) / len(later)


def trial_objective(scores: Sequence[float], how: str) -> float:
    """The trial's value from its runs' scores: their mean, IQM (rliable's: the 25% trimmed
    mean, scipy's trim_mean) or the worst."""
    if how == "min":
        return float(min(scores))
    if how == "iqm":
        return float(scipy.stats.trim_mean(np.asarray(scores), proportiontocut=0.25))
    return float(np.mean(scores))


def runs_at_once(k: int, workers: int) -> tuple[int, int]:
    """How many of a trial's K runs train at a time (the worker's share of the cores, at
    least one), and the torch threads of each."""
    share = max(1, cores() // workers)
    at_once = min(k, share)
    return at_once, max(1, share // at_once)


@dataclass(frozen=True)
class SeedRunSpec:
    """What a run's process needs (it rebuilds the config: a Config does not pickle)."""

    settings: TuneSettings
    layers: tuple[Layer, ...]
    path: Path
    tracking: Tracking | None
    torch_threads: int
    seed: int
    written: dict[str, Any]  # the config as config.yml holds it


@dataclass
class SeedRun:
    index: int
    seed: int
    run: Run
    process: BaseProcess
    connection: Connection
    evaluations: list[tuple[int, float]] = field(default_factory=list)
    timesteps: int | None = None
    ended: bool = False


@dataclass(frozen=True)
class SeedRunsEnd:
    state: TrialState
    value: float | None
    reason: str | None
    interrupted: bool = False


def start_seed_runs(specs: Sequence[SeedRunSpec]) -> list[SeedRun]:
    context = multiprocessing.get_context("spawn")
    runs = []
    for index, spec in enumerate(specs):
        mine, theirs = context.Pipe()
        # Not a daemon: a run may start env processes of its own (vec_env: subproc).
        process = context.Process(
            target=_seed_run_process,
            args=(spec, theirs, os.getpid()),
            name=f"zoo-tune-seed-{index}",
        )
        process.start()
        theirs.close()
        runs.append(SeedRun(index, spec.seed, Run(spec.path), process, mine))
    return runs


class Lockstep:
    """The worker's side: hands out turns, gathers each step's evaluations, asks the pruner."""

    def __init__(self, trial: optuna.Trial, runs: list[SeedRun], at_once: int, pruner: str):
        self.trial = trial
        self.runs = runs
        self.at_once = at_once
        self.pruner = pruner
        self.waiting_turn: deque[SeedRun] = deque(runs)  # all wait for their first turn
        self.training: set[int] = set()
        self.at_evaluation: dict[int, tuple[int, float, bool]] = {}
        self.means: list[tuple[int, float]] = []  # what the pruner saw
        self.stop_reason: str | None = None  # pruned, or a network gone NaN
        self.failure: str | None = None
        self.stopping = False
        self.interrupted = False

    def run(self) -> None:
        self._give_turns()
        while any(not run.ended for run in self.runs):
            try:
                self._next_messages()
            except KeyboardInterrupt:  # the runs got the Ctrl-C too and end their training
                self.interrupted = True
                self._stop_all()

    def _next_messages(self) -> None:
        live = {run.connection: run for run in self.runs if not run.ended}
        for ready in wait(list(live)):
            run = live[ready]  # type: ignore[index]
            try:
                message: tuple[Any, ...] = run.connection.recv()
            except (EOFError, OSError):
                message = ("error", None)
            self._handle(run, message)
        self._give_turns()
        if self.stopping:
            self._stop_all()
        elif self.at_evaluation and not self.training and not self.waiting_turn:
            self._step_complete()

    def _handle(self, run: SeedRun, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "evaluation":
            _, step, mean, finite = message
            self.training.discard(run.index)
            self.at_evaluation[run.index] = (step, mean, finite)
            if finite:
                run.evaluations.append((step, mean))
            return
        run.ended = True
        self.training.discard(run.index)
        if kind == "done":
            run.timesteps = message[1]
            self.interrupted |= bool(message[2])
            return
        run.process.join(timeout=END_WAIT_SECONDS)
        why = message[1] or f"its process ended without a word (exit code {run.process.exitcode})"
        if self.failure is None and not self.interrupted:
            self.failure = f"seed run {run.index} (seed {run.seed}): {why}"
        self.stopping = True

    def _give_turns(self) -> None:
        while not self.stopping and len(self.training) < self.at_once and self.waiting_turn:
            run = self.waiting_turn.popleft()
            if _send(run, GO):
                self.training.add(run.index)

    def _step_complete(self) -> None:
        """Every live run has evaluated at this step: one value for Optuna, one verdict."""
        steps = [step for step, _, _ in self.at_evaluation.values()]
        step = max(steps)
        if not all(finite for _, _, finite in self.at_evaluation.values()):
            self.stop_reason = f"the network went NaN or infinite by step {step:,}"
        else:
            mean = float(np.mean([m for _, m, _ in self.at_evaluation.values()]))
            self.means.append((step, mean))
            self.trial.report(mean, step)
            if self.trial.should_prune():
                self.stop_reason = (
                    f"pruned at step {step:,}: evaluation mean {mean:g} over "
                    f"{len(steps)} seeds is behind the other trials ({self.pruner} pruner)"
                )
        if self.stop_reason is not None:
            self.stopping = True
            self._stop_all()
            return
        self.waiting_turn.extend(r for r in self.runs if r.index in self.at_evaluation)
        self.at_evaluation.clear()
        self._give_turns()

    def _stop_all(self) -> None:
        self.stopping = True
        for run in [*self.waiting_turn, *(self.runs[i] for i in self.at_evaluation)]:
            _send(run, STOP)
        self.waiting_turn.clear()
        self.at_evaluation.clear()


def end_processes(runs: Sequence[SeedRun]) -> None:
    """Every run's process has ended once its trial has (killed if it hangs)."""
    for run in runs:
        run.process.join(timeout=END_WAIT_SECONDS)
        if run.process.is_alive():
            run.process.kill()
            run.process.join()
        run.connection.close()


def _send(run: SeedRun, word: str) -> bool:
    try:
        run.connection.send(word)
        return True
    except (BrokenPipeError, OSError):  # the run's process is gone: its EOF comes next
        return False


def finish(lockstep: Lockstep, trial: optuna.Trial, how: str) -> SeedRunsEnd:
    """Record the runs in the trial's attributes and say how the trial ended."""
    runs = lockstep.runs
    scores = [later_half_mean(run.evaluations) for run in runs]
    trial.set_user_attr(
        SEED_RUNS_ATTR,
        [
            {"seed": run.seed, "run_dir": str(run.run.path), "score": score,
             "timesteps": run.timesteps, "evaluations": [list(e) for e in run.evaluations]}
            for run, score in zip(runs, scores, strict=True)
        ],
    )  # fmt: skip
    steps = [run.timesteps for run in runs if run.timesteps is not None]
    if steps:
        trial.set_user_attr("timesteps", min(steps))
    trial.set_user_attr("evaluations", [[step, mean] for step, mean in lockstep.means])
    trial.set_user_attr(TRIAL_OBJECTIVE_ATTR, how)
    if lockstep.interrupted:
        return SeedRunsEnd(TrialState.FAIL, None, "interrupted (Ctrl-C)", interrupted=True)
    if lockstep.failure is not None:
        return SeedRunsEnd(TrialState.FAIL, None, lockstep.failure)
    if lockstep.stop_reason is not None:
        return SeedRunsEnd(TrialState.PRUNED, None, lockstep.stop_reason)
    if any(score is None for score in scores):
        return SeedRunsEnd(
            TrialState.FAIL, None, "no evaluation ran (is eval_freq above the trial?)"
        )
    return SeedRunsEnd(
        TrialState.COMPLETE, trial_objective([s for s in scores if s is not None], how), None
    )


def _seed_run_process(spec: SeedRunSpec, connection: Connection, worker_pid: int) -> None:
    """One run of a trial, in its own process: waits for its turns, trains, says how it ended."""
    th.set_num_threads(spec.torch_threads)
    # A killed worker (its trial fails and runs again elsewhere) leaves no run training.
    stop_when_orphaned(worker_pid, WORKER_WATCH_SECONDS)
    try:
        import_gym_packages(spec.settings.gym_packages)
        if not _told_to_go(connection):
            connection.send(("done", None, False))
            return
        options = TrainOptions(
            device=spec.settings.device,
            on_evaluation=_EvaluationListener(connection),
            tracking=spec.tracking,
        )
        config = spec.settings.base_config(spec.layers)
        if config.to_dict() != spec.written:  # a YAML file edited since the worker read it
            raise UserError(f"{spec.path}: the config built here differs from its config.yml")
        result = train(config, Run(spec.path), options)
        connection.send(("done", result.timesteps, result.interrupted))
    except KeyboardInterrupt:  # a Ctrl-C before training started: nothing to save
        with contextlib.suppress(OSError):
            connection.send(("done", None, True))
    except (UserError, RuntimeError, ValueError, ArithmeticError, MemoryError) as error:
        text = str(error).strip().splitlines()
        with contextlib.suppress(OSError):
            connection.send(("error", f"{type(error).__name__}: {text[0] if text else ''}"))


def evaluation_is_finite(model: BaseAlgorithm, result: EvaluationResult) -> bool:
    """Whether the evaluation mean and every network weight are finite (not NaN or inf)."""
    return math.isfinite(result.mean) and all(
        bool(th.isfinite(p).all()) for p in model.policy.parameters()
    )


@dataclass
class _EvaluationListener:
    """A run's side of the lockstep: tells each evaluation, then waits for the verdict."""

    connection: Connection

    def __call__(self, model: BaseAlgorithm, result: EvaluationResult) -> bool:
        finite = evaluation_is_finite(model, result)
        try:
            self.connection.send(("evaluation", result.step, result.mean, finite))
        except OSError:
            return False
        return _told_to_go(self.connection)


def _told_to_go(connection: Connection) -> bool:
    try:
        return bool(connection.recv() == GO)
    except (EOFError, OSError):  # the worker is gone: stop
        return False
