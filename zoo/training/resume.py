"""Continuing runs: `--resume RUN_DIR` and the weights of `--init-from MODEL_OR_RUN`."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from zoo.algorithms.model_loading import algorithm_of
from zoo.config.config import Config, build_config
from zoo.core.atomic import atomic_write_text, write_atomically
from zoo.core.errors import UserError, os_error_text
from zoo.runs.checkpoints import Checkpoint, newest_checkpoint, set_aside
from zoo.runs.folders import Run, open_run, update_run_status
from zoo.training.model_setup import StartPoint


@dataclasses.dataclass(frozen=True)
class Resumption:
    run: Run
    config: Config
    start: StartPoint
    # The run had reached its total but its final model was missing or stale: written now
    # from the newest checkpoint, nothing left to train.
    finished_now: bool = False


def refuse_foreign_run(run: Run) -> None:
    """A run folder rl-baselines3-zoo wrote has none of zoo's checkpoints, and rl_zoo3 may
    still be training in it: zoo starts a run of its own from its weights instead."""
    if run.layout == "rl_zoo3":
        info = run.read_info()
        raise UserError(
            f"{run.path} is an rl-baselines3-zoo run: zoo cannot resume it; start a zoo run "
            f"from its weights: zoo train --algo {info['algo']} --env {info['env']} "
            f"--init-from {run.path}"
        )


def prepare_resume(
    run: Run, total_timesteps: int | None, warn: Callable[[str], None]
) -> Resumption:
    """The run, its own config and the newest complete checkpoint to continue from.

    Call it holding the run's training lock: it tidies the folder. Newer checkpoints that
    are incomplete or corrupt are reported and set aside, and files a killed save left
    half-written are removed. With no checkpoint at all the run starts over from step 0 in
    the same folder, its old final model kept under another name.
    """
    try:
        return _prepare_resume(run, total_timesteps, warn)
    except OSError as error:  # a folder made read-only: nothing below may end in a traceback
        raise UserError(
            f"cannot tidy {run.path} for the resume{os_error_text(error)}; nothing was "
            f"trained. Make the folder writable, then: zoo train --resume {run.path}"
        ) from None


def _prepare_resume(
    run: Run, total_timesteps: int | None, warn: Callable[[str], None]
) -> Resumption:
    info = run.read_info()
    config = build_config(str(info["algo"]), str(info["env"]), hyperparams_file=run.config_file)
    checkpoint, skipped = newest_checkpoint(run.checkpoints_dir)
    for error in skipped:
        warn(f"warning: skipping checkpoint {error.path.name}: {error}")
        set_aside(error.path)
    remove_partial_files(run)
    saved_total = info.get("total_timesteps")
    total = total_timesteps or (saved_total if isinstance(saved_total, int) else None)
    total = total or config.n_timesteps
    step = checkpoint.step if checkpoint is not None else 0
    if checkpoint is None:
        warn(f"note: {run.path} has no complete checkpoint: the run starts over from step 0")
        _keep_old_final_model(run, info, warn)
    elif total <= step:
        if info.get("status") == "finished" and run.final_model.is_file():
            raise UserError(
                f"{run.path} is already at step {step:,} of {total:,}; "
                f"give a larger total with -n to train on"
            )
        # Stopped between its last checkpoint and its final model (e.g. killed mid-write).
        write_atomically(run.final_model, lambda to: shutil.copyfile(checkpoint.model_file, to))
        update_run_status(run, "finished", step)
        finished = StartPoint(resumed=True, checkpoint=checkpoint, total_timesteps=total)
        return Resumption(run, config, finished, finished_now=True)
    if checkpoint is not None:
        keep_monitor_rows_of(run, checkpoint)
    return Resumption(
        run, config, StartPoint(resumed=True, checkpoint=checkpoint, total_timesteps=total)
    )


def remove_partial_files(run: Run) -> None:
    """Files a killed process left under their temporary names (never complete)."""
    for folder in (run.path, run.checkpoints_dir, run.monitor_dir, run.videos_dir):
        for leftover in folder.glob(".*.partial*"):
            leftover.unlink(missing_ok=True)


def _keep_old_final_model(run: Run, info: dict[str, object], warn: Callable[[str], None]) -> None:
    if not run.final_model.is_file():
        return
    steps = info.get("timesteps")
    kept = run.path / f"final_model_before_restart_step_{steps}.zip"
    run.final_model.rename(kept)
    warn(f"note: the run's earlier final model is kept as {kept.name}")


def keep_monitor_rows_of(run: Run, checkpoint: Checkpoint) -> None:
    """Cut each monitor file back to the games it held at the checkpoint: games of the
    steps a resume rolls back were never part of the run that goes on."""
    rows = checkpoint.training_state().get("monitor_lines")
    if not isinstance(rows, dict):
        return  # a checkpoint from before zoo counted them
    for name, count in rows.items():
        path = run.monitor_dir / str(name)
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        if len(lines) > int(count):
            atomic_write_text(path, "".join(lines[: int(count)]))


def init_weights_file(source: Path, warn: Callable[[str], None]) -> Path:
    """The model zip behind `--init-from`: a zip, or a run folder's final model, else its
    newest complete checkpoint."""
    if source.is_file():
        algorithm_of(source)  # a readable model zip, or one clear line
        return source
    if not source.is_dir():
        raise UserError(f"--init-from {source}: no such model file or run folder")
    run = open_run(source)
    if run.final_model.is_file():
        return run.final_model
    checkpoint, skipped = newest_checkpoint(run.checkpoints_dir)
    for error in skipped:
        warn(f"warning: --init-from skips checkpoint {error.path.name}: {error}")
    if checkpoint is None:
        raise UserError(f"--init-from {source}: the run has no final model and no checkpoint yet")
    return checkpoint.model_file


def without_random_phase(config: Config) -> Config:
    """The config with the policy acting from step 0: no uniform random play before
    learning_starts, and no purely random `random_steps` at the start of the epsilon decay."""
    if "random_warmup" not in config.schema.algorithm:
        raise UserError(f"--skip-random-phase: {config.algo} has no random phase")
    hyperparams = dict(config.hyperparams)
    hyperparams["random_warmup"] = False
    exploration = hyperparams.get("exploration")
    if isinstance(exploration, dict) and exploration.get("random_steps"):
        hyperparams["exploration"] = {**exploration, "random_steps": 0}
    return dataclasses.replace(config, hyperparams=MappingProxyType(hyperparams))
