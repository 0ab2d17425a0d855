"""`zoo tune`: Optuna studies whose trials are short `zoo train` runs.

Each trial draws hyperparameters from the search space, merges them into the same validated
config `zoo train` builds, trains through the same `train` (envs, callbacks, evaluation on
full games) in its own run folder, and reports every evaluation mean to Optuna so the pruner
can stop it early. The objective is the mean of the later half of the trial's evaluations.
With --seeds-per-trial K, a trial is K such runs moved in lockstep (zoo/tune/trial_runs.py).
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch as th
from optuna.trial import TrialState
from stable_baselines3.common.base_class import BaseAlgorithm

from zoo.config.choice import ConfigChoice
from zoo.config.config import Config
from zoo.config.layers import Layer
from zoo.core.errors import UserError
from zoo.envs.gym_packages import import_gym_packages
from zoo.runs.evaluation import EvaluationResult
from zoo.runs.folders import Run, write_run_files
from zoo.runs.trackers import create_tracking_group
from zoo.runs.tracking import Tracking
from zoo.training.train import TrainOptions, train
from zoo.tune.sampler import TrialSeededSampler
from zoo.tune.search_space import SearchSpace, load_search_space
from zoo.tune.storage import (
    WORKER_ATTR,
    StudyStorage,
    fail_abandoned_trials,
    heartbeat,
    open_storage,
    record_first_heartbeat,
    worker_identity,
)
from zoo.tune.trial_runs import (
    check_seed_settings,
    evaluation_is_finite,
    later_half_mean,
    run_trial_seeds,
    seeds_identity,
    trial_layers,
)

FAILURE_ATTR = "failure"
PRUNED_ATTR = "pruned_reason"
STUDY_ATTR = "zoo"
# Seconds between looks at the study while the last trials run elsewhere.
POLL_SECONDS = 2.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class TuneSettings:
    config: ConfigChoice  # the options `zoo train` takes too; each trial's values go on top
    trials: int
    trial_steps: int
    study: str | None = None
    storage: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    evals_per_trial: int = 4
    seed: int | None = None
    timeout: float | None = None
    workers: int = 1
    search_space: Path | None = None
    log_dir: Path = Path("logs")
    device: str = "cpu"
    heartbeat_interval: int = 30
    grace_period: int = 90
    quiet: bool = False
    argv: tuple[str, ...] = ()
    gym_packages: tuple[str, ...] = ()  # imported again in each worker process
    tracking: Tracking | None = None  # --track: each trial is a tracked run
    seeds_per_trial: int = 1
    trial_objective: str = "mean"  # how the runs' scores of a trial make its value

    @property
    def algo(self) -> str:
        return self.config.algo

    def base_config(self, extra: Sequence[Layer] = ()) -> Config:
        """The config of a full run (-n sets the n_timesteps best.yml is for)."""
        return self.config.build(extra)

    @property
    def study_name(self) -> str:
        if self.study is not None:
            return self.study
        return f"{self.algo}-{self.base_config().env.name}"

    @property
    def trial_tracking(self) -> Tracking | None:
        """--track for each trial's runs: tracked runs grouped by the study."""
        return self.tracking.in_group(f"tune/{self.study_name}") if self.tracking else None

    @property
    def study_dir(self) -> Path:
        return self.log_dir / "tune" / self.study_name

    def eval_freq(self) -> int:
        return max(1, self.trial_steps // self.evals_per_trial)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)


@dataclass
class TrialReporter:
    """Told every evaluation of a trial: reports it to Optuna and stops hopeless or broken runs."""

    trial: optuna.Trial
    pruner_name: str
    evaluations: list[tuple[int, float]] = field(default_factory=list)
    stop_reason: str | None = None

    def __call__(self, model: BaseAlgorithm, result: EvaluationResult) -> bool:
        if not evaluation_is_finite(model, result):
            self.stop_reason = f"the network went NaN or infinite by step {result.step:,}"
            return False
        self.evaluations.append((result.step, result.mean))
        self.trial.report(result.mean, result.step)
        if self.trial.should_prune():
            self.stop_reason = (
                f"pruned at step {result.step:,}: evaluation mean {result.mean:g} is behind the "
                f"other trials ({self.pruner_name} pruner)"
            )
            return False
        return True

    def objective(self) -> float | None:
        """The mean of the later half of the evaluations: one evaluation is too noisy."""
        return later_half_mean(self.evaluations)


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    state: TrialState
    value: float | None
    reason: str | None
    seconds: float
    interrupted: bool = False


def make_sampler(settings: TuneSettings) -> optuna.samplers.BaseSampler:
    """With --seed, every trial draws from its own stream, (seed, trial number): workers
    started with the same --seed on many machines draw different values, and one worker
    draws the same values again. Without it, each process seeds itself at random."""

    def make(seed: int | None) -> optuna.samplers.BaseSampler:
        if settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    if settings.seed is None:
        return make(None)
    return TrialSeededSampler(make, settings.seed)


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "median":
        # No verdict before 3 trials have finished nor in the first third of a trial: early
        # scores of a learning agent say little.
        return optuna.pruners.MedianPruner(
            n_startup_trials=3, n_warmup_steps=settings.trial_steps // 3
        )
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=settings.eval_freq())
    return optuna.pruners.NopPruner()


def check_settings(settings: TuneSettings) -> None:
    if settings.trials < 1:
        raise UserError("--trials must be >= 1")
    if settings.trial_steps < 1:
        raise UserError("--trial-steps must be >= 1")
    if not 1 <= settings.evals_per_trial <= settings.trial_steps:
        raise UserError("--evals-per-trial must be between 1 and --trial-steps")
    if not 1 <= settings.workers <= 256:
        raise UserError("--workers must be between 1 and 256")
    check_seed_settings(settings)
    if settings.timeout is not None and settings.timeout <= 0:
        raise UserError("--timeout must be > 0 seconds")
    if settings.heartbeat_interval < 1 or settings.grace_period <= settings.heartbeat_interval:
        raise UserError("--heartbeat-interval must be >= 1 and below --grace-period")
    if settings.study is not None and not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9._-]*", settings.study
    ):
        raise UserError(
            f"--study {settings.study!r}: use letters, digits, '.', '_' and '-' (it names a folder)"
        )


def prepare_study(settings: TuneSettings) -> tuple[StudyStorage, SearchSpace]:
    """Check everything a worker will need, then create the study or join it."""
    check_settings(settings)
    base = settings.base_config()
    space = load_search_space(settings.algo, settings.search_space)
    # One draw from a scratch study: a space whose values the config refuses fails here,
    # in one line, rather than in every trial.
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    trial_config(settings, space.suggest(probe, settings.trial_steps), 0)
    storage = _open_study_storage(settings)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage.storage,
        direction="maximize",
        load_if_exists=True,
    )
    identity = {
        "algo": settings.algo,
        "env": base.env.name,
        "trial_steps": settings.trial_steps,
        "evals_per_trial": settings.evals_per_trial,
        "search_space": _digest(space),
        **seeds_identity(settings),
    }
    known = study.user_attrs.get(STUDY_ATTR)
    if known is None:
        study.set_user_attr(STUDY_ATTR, identity)
        study.set_user_attr("base_config", base.to_dict())
    elif known != identity:
        differs = ", ".join(k for k in {**known, **identity} if known.get(k) != identity.get(k))
        raise UserError(
            f"study {settings.study_name!r} in {storage.shown} was made with other settings "
            f"({differs}); use the same ones or another --study"
        )
    create_tracking_group(settings.trial_tracking)  # once, before workers and seed runs start
    return storage, space


def _digest(space: SearchSpace) -> str:
    text = json.dumps([repr(entry) for entry in space.entries])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trial_config(settings: TuneSettings, values: dict[str, Any], number: int) -> Config:
    return settings.base_config(extra=trial_layers(settings, values, number))


def run_workers(settings: TuneSettings) -> None:
    """Run `settings.workers` workers on this machine until the study has its trials."""
    if settings.workers == 1:
        run_worker(settings)
        return
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker_process, args=(settings, index), name=f"zoo-tune-{index}")
        for index in range(settings.workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:  # they got the Ctrl-C too and are ending their trial
            process.join()
        raise
    failed = [p.exitcode for p in processes if p.exitcode not in (0, 130)]
    if failed:
        raise UserError(f"{len(failed)} of {settings.workers} workers failed (see above)")


def _worker_process(settings: TuneSettings, index: int) -> None:
    # Workers share the cores: torch in each uses its share.
    th.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))
    try:
        import_gym_packages(settings.gym_packages)
        run_worker(settings)
    except UserError as error:
        print(f"zoo: error: worker {index}: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _open_study_storage(settings: TuneSettings) -> StudyStorage:
    return open_storage(
        spec=settings.storage,
        study_dir=settings.study_dir,
        workers=settings.workers,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
    )


def run_worker(settings: TuneSettings) -> list[TrialOutcome]:
    """Take trials until the study has `settings.trials` complete or pruned ones."""
    storage = _open_study_storage(settings)
    study = optuna.load_study(
        study_name=settings.study_name,
        storage=storage.storage,
        sampler=make_sampler(settings),
        pruner=make_pruner(settings),
    )
    space = load_search_space(settings.algo, settings.search_space)
    started = time.monotonic()
    outcomes = []
    while settings.timeout is None or time.monotonic() - started < settings.timeout:
        trial = claim_trial(study, storage, settings.trials, settings.say)
        if trial is None:
            break
        outcome = run_trial(study, trial, settings, space, storage)
        outcomes.append(outcome)
        settings.say(_outcome_line(outcome, trial))
        if outcome.interrupted:
            raise KeyboardInterrupt
    return outcomes


def claim_trial(
    study: optuna.Study, storage: StudyStorage, budget: int, say: Callable[[str], None]
) -> optuna.Trial | None:
    """A new trial while complete + pruned + running ones are fewer than `budget`; None once
    the study has its trials. While the last trials run elsewhere, wait: if their worker
    dies, they fail and run again here."""
    while True:
        with storage.claim():
            for number in fail_abandoned_trials(study, storage):
                say(f"trial {number}: its worker stopped answering; it failed and runs again")
            trials = study.get_trials(deepcopy=False)
            done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            failures = sum(
                t.state == TrialState.FAIL and FAILURE_ATTR in t.user_attrs for t in trials
            )
            if failures >= max(budget, 3):
                raise UserError(
                    f"{failures} trials failed (reasons: zoo tune --report, trials.csv); "
                    "fix the search space or the config"
                )
            if done >= budget:
                return None
            if done + running < budget:
                trial = study.ask()
                trial.set_user_attr(WORKER_ATTR, worker_identity())
                # Optuna only fails trials that have beaten once: beat before the lock is
                # released, so a worker killed at any moment leaves a trial that will fail.
                record_first_heartbeat(storage, trial)
                return trial
        time.sleep(POLL_SECONDS)


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    settings: TuneSettings,
    space: SearchSpace,
    storage: StudyStorage,
) -> TrialOutcome:
    """Train one trial and tell the study how it ended; a broken trial fails, the study goes on."""
    started = time.monotonic()

    def end(state: TrialState, value: float | None, reason: str | None, **kw: Any) -> TrialOutcome:
        if reason is not None:
            trial.set_user_attr(PRUNED_ATTR if state == TrialState.PRUNED else FAILURE_ATTR, reason)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        return TrialOutcome(trial.number, state, value, reason, time.monotonic() - started, **kw)

    try:
        values = space.suggest(trial, settings.trial_steps)
        config = trial_config(settings, values, trial.number)
    except (UserError, ValueError) as error:
        return end(TrialState.FAIL, None, f"invalid sampled combination: {error}")
    base_steps = int(
        study.user_attrs.get("base_config", {}).get("n_timesteps", settings.trial_steps)
    )
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr(
        "full_run_values", space.from_params(trial.params, base_steps, for_trial=False)
    )
    if settings.seeds_per_trial > 1:  # K runs in trial_NNNN/seed_<j> (zoo/tune/trial_runs.py)
        folder = _trial_folder(settings, trial.number)
        trial.set_user_attr("run_dir", str(folder))
        with heartbeat(storage, trial):
            ended = run_trial_seeds(trial, settings, values, folder)
        return end(ended.state, ended.value, ended.reason, interrupted=ended.interrupted)
    run = _trial_run(settings, config, trial.number)
    trial.set_user_attr("run_dir", str(run.path))
    reporter = TrialReporter(trial, settings.pruner)
    options = TrainOptions(
        device=settings.device, on_evaluation=reporter, tracking=settings.trial_tracking
    )
    try:
        with heartbeat(storage, trial):
            result = train(config, run, options)
    except KeyboardInterrupt:
        return end(TrialState.FAIL, None, "interrupted (Ctrl-C)", interrupted=True)
    except (UserError, RuntimeError, ValueError, ArithmeticError, MemoryError) as error:
        text = str(error).strip().splitlines()
        return end(TrialState.FAIL, None, f"{type(error).__name__}: {text[0] if text else ''}")
    finally:
        gc.collect()  # the trial's model, envs and buffer go before the next one starts
    trial.set_user_attr("timesteps", result.timesteps)
    trial.set_user_attr("evaluations", [[step, mean] for step, mean in reporter.evaluations])
    if result.interrupted:
        return end(TrialState.FAIL, None, "interrupted (Ctrl-C)", interrupted=True)
    if reporter.stop_reason is not None:
        return end(TrialState.PRUNED, None, reporter.stop_reason)
    value = reporter.objective()
    if value is None:
        return end(TrialState.FAIL, None, "no evaluation ran (is eval_freq above the trial?)")
    return end(TrialState.COMPLETE, value, None)


def _trial_run(settings: TuneSettings, config: Config, number: int) -> Run:
    run = Run(_trial_folder(settings, number))
    write_run_files(run, config, settings.device, ("tune", *settings.argv))
    return run


def _trial_folder(settings: TuneSettings, number: int) -> Path:
    path = settings.study_dir / "trials" / f"trial_{number:04d}"
    try:
        path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        # Another machine's worker of a shared study took this number's folder name here
        # only if it shares the disk; keep both.
        path = path.with_name(f"{path.name}_{os.getpid()}")
        path.mkdir(parents=True)
    return path


def _outcome_line(outcome: TrialOutcome, trial: optuna.Trial) -> str:
    drawn = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    head = f"trial {outcome.number} {outcome.state.name.lower()} in {outcome.seconds:.0f} s"
    if outcome.state == TrialState.COMPLETE:
        head += f": objective {outcome.value:g}"
    elif outcome.reason:
        head += f": {outcome.reason}"
    return f"{head} [{drawn}]"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
