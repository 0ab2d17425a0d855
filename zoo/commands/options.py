"""The options that choose a configuration, declared once.

`train`, `tune` and `schedule` add CONFIG_OPTIONS to their parsers and turn them into a
`ConfigChoice` through `config_choice`, so an option cannot exist in one command and be
dropped by another; `train --resume` names the options it refuses from the same declarations.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.config.choice import ConfigChoice
from zoo.schema.keys import SCHEMAS, TOOLKIT_FIELDS

if TYPE_CHECKING:
    from zoo.runs.tracking import Tracking


@dataclass(frozen=True)
class Option:
    """One command-line option: its flags, its argparse settings, and the hyperparameter it
    sets where it sets one (`key`)."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    with_resume: bool = False  # may go with `train --resume` (it changes no saved config)

    @property
    def dest(self) -> str:
        return str(self.settings.get("dest") or self.flags[-1].lstrip("-").replace("-", "_"))

    @property
    def shown(self) -> str:
        return "/".join(self.flags)

    def add_to(self, parser: argparse.ArgumentParser, **settings: Any) -> None:
        parser.add_argument(*self.flags, **{**self.settings, **settings})

    def given(self, args: argparse.Namespace) -> bool:
        return getattr(args, self.dest) not in (None, False, [])


def hyperparameter_option(key: str, with_resume: bool = False) -> Option:
    """The option of a key whose declaration (zoo/schema/keys.py) has a flag, as declared there."""
    spec = TOOLKIT_FIELDS[key]
    flag = spec.flag
    if flag is None:
        raise ValueError(f"{key} declares no command-line flag")
    default = f"; default: {spec.default_text}" if spec.default_text else ""
    settings = {
        "dest": flag.dest,
        "type": flag.type,
        "metavar": flag.metavar,
        "choices": flag.choices,
        "help": f"{spec.help} ({key}{default})",
    }
    return Option(flag.options, settings, key=key, with_resume=with_resume)


ALGO = Option(("--algo",), {"choices": list(SCHEMAS), "help": "the learning algorithm"})
ENV = Option(
    ("--env",),
    {
        "help": "game or env: a short case-insensitive name (Breakout, pong, SpaceInvaders-ram) "
        "or a gymnasium id (BreakoutNoFrameskip-v4, ALE/Breakout-v5, CartPole-v1)"
    },
)
GYM_PACKAGES = Option(
    ("--gym-packages",),
    {
        "action": "append",
        "default": [],
        "metavar": "PKG",
        "help": "import this package first, for the gymnasium envs it registers; repeatable",
    },
    with_resume=True,
)

CONFIG_OPTIONS: tuple[Option, ...] = (
    ALGO,
    ENV,
    Option(
        ("--preset",),
        {
            "metavar": "NAME",
            "help": "a named published setting from hyperparams/presets.yml "
            "(sb3_benchmark, nature2015, dqn2013, keras, a2c_nstep5, ppo2017)",
        },
    ),
    hyperparameter_option("n_timesteps", with_resume=True),
    hyperparameter_option("seed"),
    hyperparameter_option("n_envs"),
    hyperparameter_option("vec_env"),
    Option(
        ("--set",),
        {
            "action": "append",
            "default": [],
            "metavar": "KEY=VALUE",
            "help": "override one hyperparameter; VALUE is YAML (1e-4, true, [64, 64], "
            "{eps: 1e-5}); KEY may be dotted (policy_kwargs.net_arch=[64,64]); repeatable",
        },
    ),
    Option(
        ("--hyperparams-file",),
        {
            "type": Path,
            "metavar": "FILE",
            "help": "YAML file of hyperparameters, flat or in sections like hyperparams/*.yml "
            "(a run's config.yml works as is; so do rl-baselines3-zoo's files)",
        },
    ),
    GYM_PACKAGES,
)


def add_config_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The options that select and adjust a configuration; `train`, `tune` and `schedule`
    share them."""
    for option in CONFIG_OPTIONS:
        if option in (ALGO, ENV):
            option.add_to(parser, required=required)
        else:
            option.add_to(parser)


def config_choice(args: argparse.Namespace, extra: Sequence[Option] = ()) -> ConfigChoice:
    """The configuration the shared options (and a command's own `extra` ones) ask for."""
    return ConfigChoice(
        algo=args.algo,
        env=args.env,
        preset=args.preset,
        hyperparams_file=args.hyperparams_file,
        overrides=tuple(args.set),
        flags=tuple(
            (option.shown, key, getattr(args, option.dest))
            for option in (*CONFIG_OPTIONS, *extra)
            if (key := option.key) is not None
        ),
    )


TRACK_OPTIONS: tuple[Option, ...] = (
    Option(
        ("--track",),
        {
            "choices": ["mlflow", "wandb"],
            "help": "also send params, metrics, evaluations and the final files to MLflow or "
            "W&B (extras: pip install zoo[mlflow] / zoo[wandb]; W&B offline: WANDB_MODE=offline)",
        },
        with_resume=True,
    ),
    Option(
        ("--track-uri",),
        {
            "metavar": "URI",
            "help": "with --track: MLflow's store or server (default: ./mlruns), "
            "or the W&B server's address",
        },
        with_resume=True,
    ),
)


def tracking_choice(args: argparse.Namespace) -> Tracking | None:
    """The tracking --track/--track-uri ask for, or None; checked before any folder is made."""
    from zoo.core.errors import UserError
    from zoo.runs.tracking import check_tracking

    if args.track is None:
        if args.track_uri is not None:
            raise UserError("--track-uri goes with --track mlflow or --track wandb")
        return None
    return check_tracking(args.track, args.track_uri)
