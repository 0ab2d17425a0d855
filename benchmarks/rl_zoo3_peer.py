"""rl-baselines3-zoo (rl_zoo3) as it builds a run, for side-by-side benchmarks: its
ExperimentManager reads its own hyperparams/<algo>.yml (the `atari` section for a game),
wraps the env and makes the model, exactly as `python -m rl_zoo3.train` would, minus
callbacks (no evaluations, no checkpoints). Needs `pip install rl_zoo3`."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo.core.errors import UserError


def hyperparams_file(algo: str) -> Path:
    """rl_zoo3's own hyperparameter file of `algo`, as installed."""
    try:
        import rl_zoo3
    except ImportError:
        raise UserError(
            "the rl_zoo3 backend needs rl-baselines3-zoo: pip install rl_zoo3 (the version "
            "matching stable-baselines3)"
        ) from None
    path = Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"
    if not path.is_file():
        raise UserError(f"rl_zoo3 has no hyperparams file for {algo} ({path})")
    return path


def section_keys(algo: str) -> set[str]:
    """The keys of rl_zoo3's `atari` section for `algo`: what a --set may change there."""
    sections = yaml.load(hyperparams_file(algo).read_text(), Loader=yaml.UnsafeLoader)
    return set(sections.get("atari", {}))


@contextmanager
def rl_zoo3_run(
    algo: str, env_id: str, seed: int, device: str, hyperparams: Mapping[str, Any]
) -> Iterator[tuple[BaseAlgorithm, VecEnv]]:
    """rl_zoo3's model and training env for `env_id`, its settings changed by `hyperparams`;
    its log folder is a temporary one, removed afterwards."""
    hyperparams_file(algo)  # one clear line when rl_zoo3 is missing
    from rl_zoo3.exp_manager import ExperimentManager

    with tempfile.TemporaryDirectory(prefix="rl_zoo3-") as log_folder:
        manager = ExperimentManager(
            argparse.Namespace(algo=algo, env=env_id),  # what it saves as args.yml
            algo,
            env_id,
            log_folder,
            eval_freq=-1,  # no evaluation callback, as zoo's backends train here
            hyperparams=dict(hyperparams),
            seed=seed,
            device=device,
            verbose=0,
        )
        setup = manager.setup_experiment()
        assert setup is not None  # None only when tuning
        model, _ = setup
        env = model.get_env()
        assert env is not None
        try:
            yield model, env
        finally:
            env.close()
