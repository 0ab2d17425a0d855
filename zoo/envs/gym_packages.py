"""`--gym-packages PKG`: import packages that register gymnasium envs (as rl-baselines3-zoo
does), so that their ids resolve like any other. Processes zoo starts import them again."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from zoo.core.errors import UserError

# The packages imported in this process, in order: child processes import the same.
_IMPORTED: list[str] = []


def import_gym_packages(names: Sequence[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # whatever the package raises while it registers its envs
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(
                f"--gym-packages {name}: cannot import it ({type(error).__name__}"
                f"{': ' + reason if reason else ''})"
            ) from None
        if name not in _IMPORTED:
            _IMPORTED.append(name)


def imported_gym_packages() -> tuple[str, ...]:
    return tuple(_IMPORTED)


def make_registered(gym_id: str, packages: Sequence[str], **kwargs: Any) -> gym.Env:
    """gym.make in a process of its own (a SubprocVecEnv worker): the packages first."""
    import_gym_packages(packages)
    return gym.make(gym_id, **kwargs)
