"""Continuing runs: `--resume RUN_DIR` and the weights of `--init-from MODEL_OR_RUN`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from zoo.checkpoints import newest_checkpoint, set_aside
from zoo.config import Config, build_config
from zoo.errors import UserError
from zoo.models import algorithm_of
from zoo.runs import Run, open_run
from zoo.train import StartPoint


@dataclasses.dataclass(frozen=True)
class Resumption:
    run: Run
    config: Config
    start: StartPoint


def prepare_resume(
    run_dir: Path, total_timesteps: int | None, warn: Callable[[str], None]
) -> Resumption:
    """The run, its own config and the newest complete checkpoint to continue from.

    Newer checkpoints that are incomplete or corrupt are reported and set aside. With no
    checkpoint at all the run starts over from step 0 in the same folder.
    """
    run = open_run(run_dir)
    info = run.read_info()
    config = build_config(str(info["algo"]), str(info["env"]), hyperparams_file=run.config_file)
    checkpoint, skipped = newest_checkpoint(run.checkpoints_dir)
    for error in skipped:
        warn(f"warning: skipping checkpoint {error.path.name}: {error}")
        set_aside(error.path)
    if checkpoint is None:
        warn(f"note: {run.path} has no complete checkpoint: the run starts over from step 0")
    saved_total = info.get("total_timesteps")
    total = total_timesteps or (saved_total if isinstance(saved_total, int) else None)
    total = total or config.n_timesteps
    step = checkpoint.step if checkpoint is not None else 0
    if total <= step:
        raise UserError(
            f"{run.path} is already at step {step:,} of {total:,}; "
            f"give a larger total with -n to train on"
        )
    return Resumption(
        run, config, StartPoint(resumed=True, checkpoint=checkpoint, total_timesteps=total)
    )


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
