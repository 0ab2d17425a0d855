"""What a user chose for one configuration: `train`, `tune` and `schedule` build theirs here.

A plain frozen value: `zoo tune` hands it to its worker processes, which build each trial's
config from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.config.config import Config
    from zoo.config.layers import Layer


@dataclass(frozen=True)
class ConfigChoice:
    algo: str
    env: str
    preset: str | None = None
    hyperparams_file: Path | None = None
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, in order
    # (option, key, value) of options that set one hyperparameter, e.g. ("--n-envs", "n_envs",
    # 8); a None value was not given.
    flags: tuple[tuple[str, str, Any], ...] = ()

    def build(self, extra_layers: Sequence[Layer] = ()) -> Config:
        """The merged, validated config; `extra_layers` go last (a tune trial's values)."""
        from zoo.config.config import build_config  # PyTorch: not needed to parse a command line

        return build_config(
            self.algo,
            self.env,
            hyperparams_file=self.hyperparams_file,
            overrides=self.overrides,
            flags=self.flags,
            preset=self.preset,
            extra_layers=extra_layers,
        )
