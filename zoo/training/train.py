"""config -> envs -> model -> callbacks -> learn -> checkpoint and final model.

A run starts fresh, from a checkpoint of itself (`--resume`), or fresh with weights from
another model (`--init-from`). Tuning calls the same `train`.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo.algorithms import registry
from zoo.algorithms.model_loading import TRAINED_ON, load_algorithm, reason_of
from zoo.config.config import Config, minibatch_note
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
from zoo.envs.stack import make_env, make_eval_env, make_vec_env_for
from zoo.runs.checkpoints import (
    Checkpoint,
    capture_rng_states,
    check_room_for_replay_buffers,
    newest_checkpoint,
    prune_checkpoints,
    replay_buffer_bytes,
    restore_rng_states,
    save_checkpoint,
)
from zoo.runs.evaluation import EvaluationCallback, EvaluationLog, EvaluationResult
from zoo.runs.folders import (
    Run,
    mark_resumed,
    save_model_atomically,
    training_lock,
    update_run_status,
)
from zoo.runs.logger import run_logger
from zoo.training.callbacks import (
    EpisodeScalarsCallback,
    PeriodicCheckpointCallback,
    ProgressBarCallback,
    StepLoggingCallback,
    StopOnMeanScoreCallback,
)
from zoo.training.memory_admission import admit_replay_buffer

# Evaluation games get seeds of their own, away from the training envs'.
_EVAL_SEED_OFFSET = 1_000_003


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


@dataclass(frozen=True)
class StartPoint:
    """Where training starts: fresh, or continuing this run from `checkpoint` (`resumed`),
    with `total_timesteps` as the run's total, or fresh with the weights of `init_weights`."""

    resumed: bool = False
    checkpoint: Checkpoint | None = None
    total_timesteps: int | None = None
    init_weights: Path | None = None

    @property
    def step(self) -> int:
        return self.checkpoint.step if self.checkpoint is not None else 0


@dataclass(frozen=True)
class TrainResult:
    run: Run
    timesteps: int
    exit_code: int = 0  # 130 or 143 when Ctrl-C or SIGTERM stopped it
    stopped_by: str | None = None  # why training ended before its budget, if it did

    @property
    def interrupted(self) -> bool:
        return self.exit_code != 0


def resolve_device(requested: str) -> str:
    """The device the networks will really use ("auto" becomes "cuda" or "cpu")."""
    has_cuda = th.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise UserError(
            "--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu or auto"
        )
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


# What SB3, PyTorch and numpy raise for settings they cannot build (an optimizer argument
# out of range, a buffer that cannot be allocated): each is the user's to change.
_CONSTRUCTION_ERRORS = (MemoryError, ValueError, TypeError, OverflowError, RuntimeError)


def check_action_space(config: Config) -> None:
    """Refuse in one line an env whose actions the algorithm does not take (DQN on a
    continuous env); making the env here says in one line why it cannot be made."""
    if config.env.kind != "other":
        return  # Atari games: a Discrete action set, which every algorithm takes
    env = make_env(config.env, **config.env.make_kwargs())
    try:
        space = env.action_space
    finally:
        env.close()
    supported = registry.ACTION_SPACES[config.algo]
    if not isinstance(space, supported):
        names = " or ".join(kind.__name__ for kind in supported)
        able = [algo for algo, kinds in registry.ACTION_SPACES.items() if isinstance(space, kinds)]
        raise UserError(
            f"{config.algo} takes {names} action spaces, but {config.env.name} has {space}; "
            f"train it with {' or '.join(able) or 'another library'}"
        )


def build_model(config: Config, env: VecEnv, device: str) -> BaseAlgorithm:
    algorithm = registry.ALGORITHMS[config.algo]
    try:
        model = algorithm(
            config.policy,
            env,
            seed=config.seed,
            device=device,
            verbose=0,
            **config.algorithm_kwargs(),
        )
    except _CONSTRUCTION_ERRORS as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"cannot build the {config.algo} model with these settings: {reason}; "
            "change the hyperparameter it names (buffer_size, policy_kwargs, ...)"
        ) from None
    setattr(model, TRAINED_ON, config.env.name)  # saved in the zip: enjoy names the game
    return model


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
    apply_torch_threads(config.run.torch_threads)
    with _setting_up(run):
        env = make_vec_env_for(
            config.env,
            config.env_settings(),
            config.seed + start.step,  # a resumed run does not replay its first games
            str(run.monitor_dir),
            append_monitor=start.resumed,
        )
    try:
        with _setting_up(run):
            model = _starting_model(config, env, options, start)
            model.set_logger(run_logger(run.path, start.step + 1 if start.resumed else None))
            _check_replay_buffer_room(model, config, run, options, start.resumed)
            evaluation = _evaluation_callback(config, run, options, start)
            callbacks = _callbacks(config, run, model, options, total, evaluation, extra_callbacks)
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
                if isinstance(callback, EvaluationCallback):
                    callback.cancel_when = stop  # a stop need not wait for its games
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


def _starting_model(
    config: Config, env: VecEnv, options: TrainOptions, start: StartPoint
) -> BaseAlgorithm:
    device = options.device
    if start.checkpoint is None:
        model = build_model(config, env, device)
        if start.init_weights is not None:
            _load_weights(model, start.init_weights, device)
        return model
    checkpoint = start.checkpoint
    model = load_algorithm(
        registry.ALGORITHMS[config.algo],
        checkpoint.model_file,
        env,
        device,
        env_name=config.env.name,
    )
    # SB3 would go on from the observation saved in the zip; the env here is a new one.
    model._last_obs = None
    if isinstance(model, OffPolicyAlgorithm):
        buffer_file = checkpoint.replay_buffer_file
        if buffer_file is not None:
            model.load_replay_buffer(buffer_file)
            _end_stored_trajectories(model)
        elif config.replay is not None:
            why = (
                "only the newest checkpoint keeps it, and that one could not be used"
                if config.run.save_replay_buffer
                else "save_replay_buffer: false"
            )
            options.warn(
                f"note: checkpoint {checkpoint.path.name} has no replay buffer ({why}): "
                "learning restarts with an empty buffer and gradient steps resume once it "
                f"holds {model.learning_starts:,} transitions"
            )
    return model


def _end_stored_trajectories(model: OffPolicyAlgorithm) -> None:
    """Mark the newest stored transition of each env as truncated unless its episode ended:
    the game it belonged to is gone, so n-step returns must not run on into the first game
    after the resume. A real end stays one (a truncation would bootstrap from it), so the
    buffer samples what it sampled before the checkpoint, as SB3's n-step buffer cuts there."""
    buffer = model.replay_buffer
    if buffer is None or (buffer.pos == 0 and not buffer.full):
        return
    newest = (buffer.pos - 1) % buffer.buffer_size
    buffer.timeouts[newest] = np.logical_or(buffer.timeouts[newest], buffer.dones[newest] == 0)


def _load_weights(model: BaseAlgorithm, source: Path, device: str) -> None:
    try:
        model.set_parameters(str(source), exact_match=True, device=device)
    except pickle.UnpicklingError as error:
        raise UserError(f"--init-from {source}: {reason_of(error)}") from None
    except (RuntimeError, ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise UserError(
            f"--init-from {source}: its network does not fit this run's ({first_line}); "
            "use the same algo, policy, network and env"
        ) from None


def _check_replay_buffer_room(
    model: BaseAlgorithm, config: Config, run: Run, options: TrainOptions, resumed: bool
) -> None:
    if not config.run.save_replay_buffer or not isinstance(model, OffPolicyAlgorithm):
        return
    size = replay_buffer_bytes(model)
    options.say(f"Checkpoints include the replay buffer: {size / 2**30:.2f} GiB each")
    if resumed:  # a resume takes the run's own config: no --set, the file is the place
        advice = f"free space, or set save_replay_buffer: false in {run.config_file}"
        check_room_for_replay_buffers(run.path, size, advice)
    else:
        check_room_for_replay_buffers(run.path, size)


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
    seed = config.seed + _EVAL_SEED_OFFSET
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
    evaluation: EvaluationCallback | None,
    extra: Sequence[BaseCallback],
) -> list[BaseCallback]:
    callbacks: list[BaseCallback] = [
        StepLoggingCallback(config.run.log_freq),
        EpisodeScalarsCallback(),
        PeriodicCheckpointCallback(
            lambda: _save_checkpoint(model, config, run), config.run.save_freq
        ),
    ]
    if evaluation is not None:
        callbacks.append(evaluation)
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
