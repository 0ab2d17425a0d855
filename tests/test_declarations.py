"""Each hyperparameter is declared once (zoo/schema/keys.py); defaults, flags, --help and the key
table all come from that declaration."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from zoo.cli import build_parser
from zoo.commands.options import config_choice
from zoo.commands.train import TRAIN_OPTIONS
from zoo.config import config as config_module
from zoo.config.config import build_config
from zoo.config.key_table import REGENERATE, markdown_table
from zoo.envs.stack import EnvSettings
from zoo.schema.help import declarations, hyperparameter_epilog
from zoo.schema.keys import SCHEDULE_KEYS, SCHEMAS, TOOLKIT_FIELDS, toolkit_defaults
from zoo.tune import search_space

REPO = Path(__file__).resolve().parent.parent


def test_key_table_is_up_to_date() -> None:
    committed = (REPO / "docs" / "HYPERPARAMETERS.md").read_text()
    assert committed == markdown_table(), (
        f"docs/HYPERPARAMETERS.md is out of date with zoo/schema/keys.py; regenerate it: {REGENERATE}"
    )


def test_every_key_and_policy_kwargs_entry_has_help() -> None:
    for algo, schema in SCHEMAS.items():
        for key, spec in schema.fields.items():
            assert spec.help, f"{algo}: {key} has no help"
            assert spec.check.accepts, f"{algo}: {key} does not say what it accepts"
            for entry, entry_spec in spec.check.entries.items():
                assert entry_spec.help, f"{algo}: {key}.{entry} has no help"


def test_help_lists_every_key() -> None:
    epilog = hyperparameter_epilog()
    for schema in SCHEMAS.values():
        for key, spec in schema.fields.items():
            assert f"  {key} " in epilog or f"  {key}\n" in epilog, key
            assert spec.help.split()[0] in epilog
    for command in ("train", "tune", "schedule"):
        parser = _subparser(build_parser(), command)
        assert parser.epilog is not None and "stop_at_training_score" in parser.epilog


def test_each_declaration_is_listed_once() -> None:
    keys = [
        (key, spec.help, spec.check.accepts, *spec.check.entries)
        for key, spec, _algos in declarations()
    ]
    assert len(keys) == len(set(keys))
    n_steps = {algos: spec.help for key, spec, algos in declarations() if key == "n_steps"}
    assert n_steps[("dqn", "qrdqn", "c51")] == "n-step return length"


def test_defaults_come_from_the_declarations() -> None:
    atari = toolkit_defaults("atari")
    settings = EnvSettings(n_envs=1, vec_env="dummy", frame_stack=4)
    assert (settings.noop_max, settings.frame_skip, settings.screen_size) == (30, 4, 84)
    assert (settings.noop_max, settings.frame_skip, settings.screen_size) == (
        atari["noop_max"],
        atari["frame_skip"],
        atari["screen_size"],
    )
    cartpole = build_config("a2c", "CartPole-v1")
    assert "noop_max" not in cartpole.hyperparams  # Atari preprocessing only for Atari
    assert cartpole.evaluation.max_frames == TOOLKIT_FIELDS["eval_max_frames"].default == 108_000
    assert cartpole.evaluation.freq == 10_000
    breakout = build_config("a2c", "Breakout")
    assert breakout.evaluation.freq == 250_000 and breakout.env_settings().noop_max == 30
    assert toolkit_defaults("atari_ram")["vec_env"] == "dummy"


def test_typed_settings() -> None:
    config = build_config(
        "dqn",
        "CartPole-v1",
        overrides=["eval_actions=greedy", "save_freq=5", "stop_at_eval_score=3", "torch_threads=2"],
    )
    assert config.run.save_freq == 5 and config.run.stop_at_eval_score == 3.0
    assert config.run.torch_threads == 2 and config.run.stop_at_training_score is None
    assert config.evaluation.sampled is False
    assert config.replay is not None and config.replay.replay_buffer == "sb3"
    assert build_config("ppo", "CartPole-v1").replay is None


def test_flags_come_from_the_declarations() -> None:
    train = _subparser(build_parser(), "train")
    args = train.parse_args(
        ["-n", "50", "--seed", "3", "--n-envs", "2", "--vec-env", "sb3", "--save-freq", "7",
         "--record-every", "100"]
    )  # fmt: skip
    flags = config_choice(args, TRAIN_OPTIONS).flags
    assert {key: value for _name, key, value in flags} == {
        "n_timesteps": 50,
        "seed": 3,
        "n_envs": 2,
        "vec_env": "sb3",
        "save_freq": 7,
        "stop_at_eval_score": None,
        "record_every": 100,
    }
    assert ("-n/--timesteps", "n_timesteps", 50) in flags
    old = config_choice(train.parse_args(["--stop-at-reward", "60"]), TRAIN_OPTIONS).flags
    assert ("--stop-at-eval-score/--stop-at-reward", "stop_at_eval_score", 60.0) in old
    # tune and schedule take the config flags only
    for command in ("tune", "schedule"):
        parsed = _subparser(build_parser(), command).parse_args(["--algo", "dqn", "--env", "Pong"])
        assert [key for _name, key, _value in config_choice(parsed).flags] == [
            "n_timesteps",
            "seed",
            "n_envs",
            "vec_env",
        ]


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("stop_at_reward", "stop_at_eval_score", 60.0),
        ("stop_at_mean_score", "stop_at_training_score", 40.0),
    ],
)
def test_old_key_is_an_alias_with_one_note(
    old: str,
    new: str,
    value: float,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    write_yaml: Callable[[str, str], Path],
) -> None:
    monkeypatch.setattr(config_module, "_NOTED_RENAMES", set())
    config = build_config("dqn", "CartPole-v1", overrides=[f"{old}={value:g}"])
    assert config.hyperparams[new] == value and old not in config.hyperparams
    note = capsys.readouterr().err
    assert note.strip() == (
        f"note: --set {old}={value:g}: key {old!r} is now called {new!r}; please rename it"
    )
    flat = write_yaml("old.yml", f"{old}: {value:g}\n")  # a flat file with only the old key
    assert build_config("dqn", "CartPole-v1", hyperparams_file=flat).hyperparams[new] == value
    assert capsys.readouterr().err == ""  # the note comes once


def test_schedule_keys_are_declared_once() -> None:
    assert search_space.SCHEDULE_KEYS is SCHEDULE_KEYS is config_module.SCHEDULE_KEYS
    assert SCHEDULE_KEYS == (
        "learning_rate",
        "exploration",
        "priority_beta",
        "clip_range",
        "clip_range_vf",
    )


def test_train_help_shows_the_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    shown = capsys.readouterr().out
    assert "--stop-at-eval-score X, --stop-at-reward X" in shown
    assert "  stop_at_training_score" in shown and "    ortho_init" in shown


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen: argparse.ArgumentParser = action.choices[name]
            return chosen
    raise AssertionError(name)
