"""config -> envs -> model -> callbacks -> learn -> final model. Tuning calls the same `train`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo import registry
from zoo.callbacks import EpisodeScalarsCallback, ProgressBarCallback, StopOnMeanScoreCallback
from zoo.config import Config
from zoo.envs import make_vec_env_for
from zoo.errors import UserError
from zoo.runs import Run, save_model_atomically, update_run_status

# About this many agent steps between two rows of logged training metrics.
_LOG_EVERY_STEPS = 1000


@dataclass(frozen=True)
class TrainOptions:
    device: str = "auto"
    progress_stream: IO[str] | None = None  # None: no progress bar


@dataclass(frozen=True)
class TrainResult:
    run: Run
    timesteps: int
    interrupted: bool


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


def build_model(config: Config, env: VecEnv, device: str) -> BaseAlgorithm:
    algorithm = registry.ALGORITHMS[config.algo]
    model = algorithm(
        config.policy,
        env,
        seed=config.seed,
        device=device,
        verbose=0,
        **config.algorithm_kwargs(),
    )
    # Functions of the global step, saved with the model so that a resumed run continues them.
    model.lr_step_schedule = config.learning_rate_schedule()  # type: ignore[attr-defined]
    model.epsilon_schedule = config.exploration_schedule()  # type: ignore[attr-defined]
    return model


def train(
    config: Config,
    run: Run,
    options: TrainOptions,
    extra_callbacks: Sequence[BaseCallback] = (),
) -> TrainResult:
    """Train one run to its step budget; Ctrl-C stops early and still saves the model."""
    env = make_vec_env_for(config.env, config.env_settings(), config.seed, str(run.monitor_dir))
    interrupted = False
    try:
        model = build_model(config, env, options.device)
        model.set_logger(configure(str(run.path), ["tensorboard", "csv"]))
        callbacks: list[BaseCallback] = [EpisodeScalarsCallback(), *extra_callbacks]
        stop_score = config.hyperparams.get("stop_at_mean_score")
        if stop_score is not None:
            callbacks.append(StopOnMeanScoreCallback(stop_score))
        progress = None
        if options.progress_stream is not None:
            progress = ProgressBarCallback(config.n_timesteps, options.progress_stream)
            callbacks.append(progress)
        try:
            model.learn(
                total_timesteps=config.n_timesteps,
                callback=CallbackList(callbacks),
                log_interval=_log_interval(model, config),
            )
        except KeyboardInterrupt:
            interrupted = True
            if progress is not None:
                progress.close()  # SB3 skips _on_training_end when learn() is interrupted
        save_model_atomically(model, run.final_model)
        update_run_status(run, "interrupted" if interrupted else "finished", model.num_timesteps)
        model.logger.close()
        return TrainResult(run=run, timesteps=model.num_timesteps, interrupted=interrupted)
    finally:
        _close_quietly(env)


def _log_interval(model: BaseAlgorithm, config: Config) -> int:
    """SB3 counts episodes for off-policy algorithms and rollouts for on-policy ones."""
    if isinstance(model, OffPolicyAlgorithm):
        return 4
    steps_per_rollout = int(config.hyperparams["n_steps"]) * config.env_settings().n_envs
    return max(1, _LOG_EVERY_STEPS // steps_per_rollout)


def _close_quietly(env: VecEnv) -> None:
    # Subprocess envs may already have died with the Ctrl-C they also received.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        env.close()


def progress_stream(quiet: bool) -> IO[str] | None:
    """The progress bar goes to a terminal only: not with --quiet, not into files or pipes."""
    return sys.stdout if not quiet and sys.stdout.isatty() else None
