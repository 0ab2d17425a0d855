"""config -> envs -> model -> callbacks -> learn -> checkpoint and final model.

A run starts fresh, from a checkpoint of itself (`--resume`), or fresh with weights from
another model (`--init-from`), as zoo/training/model_setup.py builds or loads it. Tuning calls
the same `train`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv

from zoo.config.checks import minibatch_note
from zoo.config.config import Config
from zoo.core.errors import UserError, os_error_text
from zoo.core.interrupts import (
    StopWhenRequested,
    a_second_signal_quits,
    exit_code,
    signal_name,
    signal_of,
    stop_requests,
)
from zoo.core.threads import apply_torch_threads
from zoo.envs.stack import make_eval_env, make_vec_env_for
from zoo.runs.checkpoints import (
    Checkpoint,
    capture_rng_states,
    newest_checkpoint,
    prune_checkpoints,
    restore_rng_states,
    save_checkpoint,
)
from zoo.runs.evaluation import (
    EVAL_SEED_OFFSET,
    EvaluationCallback,
    EvaluationLog,
    EvaluationResult,
)
from zoo.runs.folders import (
    Run,
    mark_resumed,
    save_model_atomically,
    training_lock,
    update_run_status,
)
from zoo.runs.logger import run_logger
from zoo.runs.trackers import Tracker, open_tracker
from zoo.runs.tracking import Tracking
from zoo.runs.videos import check_recordable
from zoo.training.callbacks import (
    EpisodeScalarsCallback,
    PeriodicCheckpointCallback,
    ProgressBarCallback,
    StepLoggingCallback,
    StopOnMeanScoreCallback,
)
from zoo.training.memory_admission import admit_replay_buffer
from zoo.training.model_setup import (
    StartPoint,
    check_action_space,
    check_replay_buffer_room,
    resolve_device,
    starting_model,
)
from zoo.training.recording import RecordingCallback, recording_callback


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TrainOptions:
    device: str = "auto"
    progress_stream: IO[str] | None = None  # None: no progress bar
    say: Callable[[str], None] = lambda _: None  # progress messages (silenced by --quiet)
    warn: Callable[[str], None] = _to_stderr  # problems the user must see
    # Told every evaluation; returning False stops training (tuning prunes trials with it).
    on_evaluation: Callable[[BaseAlgorithm, EvaluationResult], bool] | None = None
    # The command line, recorded in run.yml when a resume starts training.
    command: tuple[str, ...] = ()
    # --track: where metrics, params and the final files also go (a resume finds its own).
    tracking: Tracking | None = None


@dataclass(frozen=True)
class TrainResult:
    run: Run
    timesteps: int
    exit_code: int = 0  # 130 or 143 when Ctrl-C or SIGTERM stopped it
    stopped_by: str | None = None  # why training ended before its budget, if it did

    @property
    def interrupted(self) -> bool:
        return self.exit_code != 0


def train(
    config: Config,
    run: Run,
    options: TrainOptions,
    extra_callbacks: Sequence[BaseCallback] = (),
    start: StartPoint | None = None,
) -> TrainResult:
    """Train one run to its step budget; Ctrl-C stops early and still saves a checkpoint."""
    with training_lock(run):
        return _train(config, run, options, extra_callbacks, start or StartPoint())


def _train(
    config: Config,
    run: Run,
    options: TrainOptions,
    extra_callbacks: Sequence[BaseCallback],
    start: StartPoint,
) -> TrainResult:
    total = start.total_timesteps or config.n_timesteps
    check_action_space(config)  # before any model: SB3 would assert
    admit_replay_buffer(config, resolve_device(options.device))  # tune and benchmark runs too
    note = minibatch_note(config.hyperparams)
    if note is not None:
        options.warn(note)
    if config.run.record_every > 0:
        check_recordable(config.env, config.env_settings())  # before anything is built
    apply_torch_threads(config.run.torch_threads)
    with _setting_up(run):
        env = make_vec_env_for(
            config.env,
            config.env_settings(),
            config.seed + start.step,  # a resumed run does not replay its first games
            str(run.monitor_dir),
            append_monitor=start.resumed,
        )
    tracker: Tracker | None = None
    try:
        tracker = open_tracker(options.tracking, run.path, f"{run.path.parent.name}/{run.path.name}",
                               config.to_dict(), start.resumed, options.warn)  # fmt: skip
        with _setting_up(run):
            model = starting_model(config, env, start, options.device, options.warn)
            resume_step = start.step + 1 if start.resumed else None
            model.set_logger(run_logger(run.path, resume_step, tracker))
            check_replay_buffer_room(model, config, run, options.say, start.resumed)
            evaluation = _evaluation_callback(config, run, options, start)
            recorder = recording_callback(config, run, start.step if start.resumed else None,
                                          options.say, options.warn)  # fmt: skip
            callbacks = _callbacks(
                config, run, model, options, total, [evaluation, recorder], extra_callbacks
            )
            if start.checkpoint is not None:
                restore_rng_states(start.checkpoint.training_state().get("rng", {}))
            if start.resumed:  # recorded once all is set up: a refused resume leaves no trace
                mark_resumed(run, start.step, total, options.command)
                options.say(f"Resuming {run.path} at step {start.step:,} of {total:,}")

        def quitting() -> None:
            record_end_at_newest_checkpoint(run, "interrupted")

        try:
            with _write_errors_of_threads_left_to_the_main_thread():
                interrupted_with = _learn(model, total, start, callbacks, options, quitting)
            interrupted = interrupted_with is not None
            with a_second_signal_quits(interrupted, options.warn, quitting):
                _save_checkpoint(model, config, run)
                save_model_atomically(model, run.final_model)
                status = "interrupted" if interrupted else "finished"
                update_run_status(run, status, model.num_timesteps)
            model.logger.close()
            if tracker is not None:
                tracker.log_files([run.final_model, run.config_file, run.videos_dir])
                tracker.finish(status)
                tracker = None
        except OSError as error:  # a full disk, a folder made read-only mid-run
            raise _write_failure(run, error) from None
        except Exception:  # whatever else ends the run: run.yml must not say `running`
            record_end_at_newest_checkpoint(run, "failed")
            raise
        return TrainResult(
            run=run,
            timesteps=model.num_timesteps,
            exit_code=interrupted_with or 0,
            stopped_by=_stop_reason(callbacks, evaluation),
        )
    finally:
        if tracker is not None:  # training did not reach its end
            tracker.finish("failed")
        _close_quietly(env)


@contextlib.contextmanager
def _write_errors_of_threads_left_to_the_main_thread() -> Iterator[None]:
    """TensorBoard writes events in a thread of its own; on a full disk that thread died
    with a traceback while the main thread printed more. Its OSError is kept quiet here: the
    writer raises it again in the main thread at its next write, which ends the run with
    the one line of `_write_failure`."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not issubclass(args.exc_type, OSError):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


@contextlib.contextmanager
def _setting_up(run: Run) -> Iterator[None]:
    """Before the first step a folder that cannot be written (made read-only, full) is one
    line; run.yml stays as it was, since nothing was trained."""
    try:
        yield
    except OSError as error:
        raise UserError(
            f"cannot use the run folder{os_error_text(error)}; nothing was trained. "
            "Make the folder writable (or free space), then run the command again"
        ) from None


def record_end_at_newest_checkpoint(run: Run, status: str) -> Checkpoint | None:
    """run.yml says how a run ended early (`interrupted`, `failed`), at the step of its
    newest complete checkpoint, where a resume continues; that checkpoint. Best effort: the
    run is ending anyway, and a failure here must not hide why."""
    checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
    with contextlib.suppress(OSError, UserError):
        update_run_status(run, status, checkpoint.step if checkpoint is not None else 0)
    return checkpoint


def _write_failure(run: Run, error: OSError) -> UserError:
    """One line for a run that could not write its files; the run is marked failed, and its
    newest complete checkpoint is named."""
    checkpoint = record_end_at_newest_checkpoint(run, "failed")
    kept = f"step {checkpoint.step:,}" if checkpoint is not None else "none yet"
    return UserError(
        f"cannot write to the run folder{os_error_text(error)}; newest complete "
        f"checkpoint: {kept}. Free space or fix the folder, then: zoo train --resume {run.path}"
    )


def _learn(
    model: BaseAlgorithm,
    total: int,
    start: StartPoint,
    callbacks: list[BaseCallback],
    options: TrainOptions,
    before_quitting: Callable[[], None],
) -> int | None:
    """Run SB3's learn to `total` global steps; the exit code of the Ctrl-C or SIGTERM that
    cut it short, or None."""
    try:
        with stop_requests(options.warn, before_quitting) as stop:
            for callback in callbacks:
                if isinstance(callback, (EvaluationCallback, RecordingCallback)):
                    callback.cancel_when = stop  # a stop need not wait for their games
            model.learn(
                total_timesteps=total - model.num_timesteps,
                callback=CallbackList([*callbacks, StopWhenRequested(stop)]),
                # None turns SB3's per-episode logging off (its code checks for None); the
                # StepLoggingCallback writes by global step instead.
                log_interval=None,  # type: ignore[arg-type]
                reset_num_timesteps=not start.resumed,
            )
    except KeyboardInterrupt as interrupt:  # where a signal could not become a stop request
        for callback in callbacks:
            if isinstance(callback, ProgressBarCallback):
                callback.close()  # SB3 skips _on_training_end when learn() is interrupted
        signum = signal_of(interrupt)
    else:
        if stop.signum is None:
            return None
        signum = stop.signum
    options.warn(
        f"Interrupted at step {model.num_timesteps:,}: saving a checkpoint "
        f"({signal_name(signum)} again quits at once; saved files stay intact)"
    )
    return exit_code(signum)


def _evaluation_callback(
    config: Config, run: Run, options: TrainOptions, start: StartPoint
) -> EvaluationCallback | None:
    evaluation = config.evaluation
    if evaluation.freq <= 0:
        return None
    log = EvaluationLog(run.evaluations_file)
    best_mean = log.best_mean()  # also counts evaluations after the checkpoint, so a
    if start.resumed:  # best_model.zip is only ever replaced by a better one
        log.keep_until(start.step)
    settings = config.env_settings()
    seed = config.seed + EVAL_SEED_OFFSET
    max_frames = evaluation.max_frames
    return EvaluationCallback(
        make_env=lambda game_seed: make_eval_env(config.env, settings, game_seed, max_frames),
        run_path=run.path,
        eval_freq=evaluation.freq,
        episodes=evaluation.episodes,
        eval_epsilon=evaluation.epsilon,
        seed=seed,
        sampled=evaluation.sampled,
        stop_at_score=config.run.stop_at_eval_score,
        best_mean=best_mean,
        announce=options.say,
        on_result=options.on_evaluation,
    )


def _callbacks(
    config: Config,
    run: Run,
    model: BaseAlgorithm,
    options: TrainOptions,
    total: int,
    games: Sequence[BaseCallback | None],  # the evaluation and the recorder, where they exist
    extra: Sequence[BaseCallback],
) -> list[BaseCallback]:
    callbacks: list[BaseCallback] = [
        StepLoggingCallback(config.run.log_freq),
        EpisodeScalarsCallback(),
        PeriodicCheckpointCallback(
            lambda: _save_checkpoint(model, config, run), config.run.save_freq
        ),
    ]
    callbacks.extend(callback for callback in games if callback is not None)
    stop_score = config.run.stop_at_training_score
    if stop_score is not None:
        callbacks.append(StopOnMeanScoreCallback(stop_score))
    callbacks.extend(extra)
    if options.progress_stream is not None:
        callbacks.append(ProgressBarCallback(total, options.progress_stream))
    return callbacks


def _save_checkpoint(model: BaseAlgorithm, config: Config, run: Run) -> Checkpoint:
    checkpoint = save_checkpoint(
        model,
        run.checkpoints_dir,
        {"rng": capture_rng_states(), "monitor_lines": monitor_lines(run)},
        with_replay_buffer=config.run.save_replay_buffer,
    )
    prune_checkpoints(run.checkpoints_dir, config.run.keep_checkpoints)
    # run.yml follows the checkpoints: after a crash it tells where a resume starts.
    update_run_status(run, "running", model.num_timesteps)
    return checkpoint


def monitor_lines(run: Run) -> dict[str, int]:
    """Lines of each monitor file now (the Monitor flushes every finished game)."""
    return {
        path.name: len(path.read_bytes().splitlines())
        for path in sorted(run.monitor_dir.glob("*.monitor.csv"))
    }


def _stop_reason(
    callbacks: Sequence[BaseCallback], evaluation: EvaluationCallback | None
) -> str | None:
    if evaluation is not None and evaluation.stopped_by_listener is not None:
        return f"the evaluation at step {evaluation.stopped_by_listener.step:,} stopped it"
    if evaluation is not None and evaluation.reached is not None:
        return (
            f"the evaluation at step {evaluation.reached.step:,} averaged "
            f"{evaluation.reached.mean:g}, reaching stop_at_eval_score"
        )
    for callback in callbacks:
        if isinstance(callback, StopOnMeanScoreCallback) and callback.reached_at is not None:
            return (
                f"the last {callback.window} games averaged at least {callback.threshold:g} "
                f"(step {callback.reached_at:,})"
            )
    return None


def _close_quietly(env: VecEnv) -> None:
    # Subprocess envs may already have died with the Ctrl-C they also received.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        env.close()


def progress_stream(quiet: bool) -> IO[str] | None:
    """The progress bar goes to a terminal only: not with --quiet, not into files or pipes."""
    return sys.stdout if not quiet and sys.stdout.isatty() else None
