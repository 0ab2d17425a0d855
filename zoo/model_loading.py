"""Load any model zip `zoo` saved, whatever the algorithm and DQN variant, with no flags."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.dqn.policies import DQNPolicy

from zoo.algos import ZooA2C, ZooDQN, ZooPPO, ZooQRDQN
from zoo.errors import UserError


def algorithm_of(path: Path) -> type[BaseAlgorithm]:
    """The zoo algorithm class that saved `path`, told by the policy class stored in it."""
    try:
        data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, RuntimeError) as error:
        raise UserError(
            f"{path}: not a readable model zip ({error}); point at a .zip a run saved"
        ) from None
    policy_class = (data or {}).get("policy_class")
    if isinstance(policy_class, type):
        if issubclass(policy_class, QRDQNPolicy):
            return ZooQRDQN
        if issubclass(policy_class, DQNPolicy):
            return ZooDQN
        if issubclass(policy_class, ActorCriticPolicy):
            # A2C and PPO share the policy class; only PPO saves a clip range.
            return ZooPPO if "clip_range" in (data or {}) else ZooA2C
    raise UserError(f"{path}: holds no DQN, QR-DQN, A2C or PPO policy; point at a .zip a run saved")


def load_model(path: str | Path, device: str = "auto") -> BaseAlgorithm:
    """The model in `path` with its network, variant switches and schedules, ready to act."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    return load_algorithm(algorithm_of(path), path, device=device)


def load_algorithm(
    algorithm: type[BaseAlgorithm], path: Path, env: VecEnv | None = None, device: str = "auto"
) -> BaseAlgorithm:
    with warnings.catch_warnings():
        # SB3 warns that a saved n-step buffer class is "custom"; the saved kwargs keep n.
        warnings.filterwarnings(
            "ignore", message=r".*is ignored because a custom `replay_buffer_class`"
        )
        try:
            return algorithm.load(path, env=env, device=device)
        except (zipfile.BadZipFile, ValueError, KeyError, EOFError, RuntimeError) as error:
            raise UserError(f"{path}: cannot load the model ({error})") from None
