from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sb3_contrib import QRDQN
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

from zoo.algorithms.ram_extractor import ScaledFlattenExtractor
from zoo.config.config import build_config
from zoo.config.layers import parse_set_argument, shipped_hyperparams_file
from zoo.core.errors import UserError
from zoo.core.yamlio import dump_yaml, parse_yaml_text
from zoo.schema.keys import SCHEMAS


def test_floats_without_a_dot_are_floats() -> None:
    assert parse_yaml_text("a: 1e-4\nb: 5E6\nc: -2.5e-3\nd: 1_000\ne: '1e-4'", "t") == {
        "a": 1e-4,
        "b": 5e6,
        "c": -2.5e-3,
        "d": 1000,
        "e": "1e-4",
    }


def test_integral_floats_become_ints() -> None:
    config = build_config("dqn", "Breakout", overrides=["n_timesteps=1e6", "buffer_size=5e4"])
    assert config.hyperparams["n_timesteps"] == 1_000_000
    assert isinstance(config.hyperparams["buffer_size"], int)
    assert build_config("dqn", "Breakout", overrides=["learning_rate=1e-4"]).hyperparams[
        "learning_rate"
    ] == pytest.approx(1e-4)


def test_merge_order(write_yaml: Callable[[str, str], Path]) -> None:
    # shipped: default n_timesteps 1e5 < atari 1e7; user file sections after them, flags, then --set
    user = write_yaml(
        "user.yml",
        """
default: {gamma: 0.9, batch_size: 16, tau: 0.5}
atari: {gamma: 0.95, batch_size: 17}
breakout: {gamma: 0.97}
Pong: {gamma: 0.5}
""",
    )
    config = build_config(
        "dqn",
        "BreakoutNoFrameskip-v4",
        hyperparams_file=user,
        overrides=["tau=0.25"],
        flags=[("--seed", "seed", 7), ("-n/--timesteps", "n_timesteps", 3000)],
    )
    hp = config.hyperparams
    assert hp["gamma"] == 0.97  # env section of the user file beats its atari section
    assert hp["batch_size"] == 17  # atari beats default
    assert hp["tau"] == 0.25  # --set beats the file
    assert hp["n_timesteps"] == 3000 and hp["seed"] == 7
    assert hp["learning_rate"] == pytest.approx(1e-4)  # shipped atari section
    assert hp["policy"] == "CnnPolicy"
    # the shipped env section (CartPole-v1) beats the shipped default section
    assert build_config("dqn", "CartPole-v1").hyperparams["train_freq"] == 256


def test_flags_lose_to_set() -> None:
    config = build_config("a2c", "pong", overrides=["n_envs=3"], flags=[("--n-envs", "n_envs", 5)])
    assert config.hyperparams["n_envs"] == 3


def test_set_parsing() -> None:
    assert parse_set_argument("policy_kwargs={net_arch: [64, 64]}").values == {
        "policy_kwargs": {"net_arch": [64, 64]}
    }
    assert parse_set_argument("policy_kwargs.optimizer_kwargs.eps=1e-5").values == {
        "policy_kwargs": {"optimizer_kwargs": {"eps": 1e-5}}
    }
    assert parse_set_argument("clip_reward=false").values == {"clip_reward": False}
    assert parse_set_argument("train_freq=[1, episode]").values == {"train_freq": [1, "episode"]}
    assert parse_set_argument("policy_kwargs.optimizer_class=").values == {
        "policy_kwargs": {"optimizer_class": None}
    }


def test_policy_kwargs_merge_entry_by_entry_and_resolve_names() -> None:
    config = build_config("a2c", "Breakout", overrides=["policy_kwargs.net_arch=[32]"])
    kwargs = config.algorithm_kwargs()["policy_kwargs"]
    assert kwargs["optimizer_class"] is RMSpropTFLike
    assert kwargs["optimizer_kwargs"] == {"eps": 1e-5}
    assert kwargs["net_arch"] == [32]
    # null restores SB3's default (the entry is dropped)
    config = build_config("a2c", "Breakout", overrides=["policy_kwargs.optimizer_class="])
    assert "optimizer_class" not in config.algorithm_kwargs()["policy_kwargs"]


def test_sb3_benchmark_defaults() -> None:
    benchmark = build_config("dqn", "Breakout", preset="sb3_benchmark").hyperparams
    strongest = build_config("dqn", "Breakout").hyperparams
    variant_keys = ("double_q", "dueling", "network", "n_steps", "loss")
    assert [benchmark[k] for k in variant_keys] == [False, False, None, 1, "huber"]
    assert [strongest[k] for k in variant_keys] == [True, True, "nature", 3, "huber"]
    # the default differs from the benchmark in the DQN extensions and, as rl_zoo3 scores its
    # DQN (the final exploration rate), the evaluation's epsilon only
    assert (benchmark["eval_epsilon"], strongest["eval_epsilon"]) == (0.01, 0.0)
    others = (*variant_keys, "seed", "eval_epsilon")
    assert {k: v for k, v in benchmark.items() if k not in others} == {
        k: v for k, v in strongest.items() if k not in others
    }
    assert {
        k: benchmark[k]
        for k in (
            "n_timesteps",
            "buffer_size",
            "learning_rate",
            "batch_size",
            "learning_starts",
            "target_update_interval",
            "train_freq",
            "exploration",
            "frame_stack",
        )
    } == {
        "n_timesteps": 10_000_000,
        "buffer_size": 100_000,
        "learning_rate": 1e-4,
        "batch_size": 32,
        "learning_starts": 100_000,
        "target_update_interval": 1000,
        "train_freq": 4,
        "exploration": {"type": "linear", "initial": 1.0, "final": 0.01, "fraction": 0.1},
        "frame_stack": 4,
    }
    a2c = build_config("a2c", "Breakout")
    assert (a2c.hyperparams["n_envs"], a2c.hyperparams["ent_coef"], a2c.hyperparams["vf_coef"]) == (
        16,
        0.01,
        0.25,
    )
    assert a2c.algorithm_kwargs()["policy_kwargs"]["optimizer_class"] is RMSpropTFLike
    assert a2c.hyperparams["policy_kwargs"]["optimizer_kwargs"] == {"eps": 1e-5}
    qrdqn = build_config("qrdqn", "Breakout").hyperparams
    assert qrdqn["exploration"]["fraction"] == 0.025 and qrdqn["n_timesteps"] == 10_000_000


def _representative_env(section: str) -> str:
    return {"default": "CartPole-v1", "atari": "Breakout", "atari_ram": "SpaceInvaders-ram"}.get(
        section, section
    )


@pytest.mark.parametrize("algo", list(SCHEMAS))
def test_every_shipped_section_validates(algo: str) -> None:
    sections = yaml.safe_load(shipped_hyperparams_file(algo).read_text())
    assert {"default", "atari", "atari_ram"} <= set(sections)
    for section in sections:
        config = build_config(algo, _representative_env(section), overrides=["seed=0"])
        assert config.hyperparams["n_timesteps"] > 0
        config.algorithm_kwargs()  # every registry name resolves


def test_every_algorithm_default_is_written_out() -> None:
    hp = build_config("qrdqn", "SpaceInvaders-ram").hyperparams
    assert hp["gamma"] == 0.99 and hp["tau"] == 1.0 and hp["max_grad_norm"] is None
    assert hp["policy_kwargs"]["features_extractor_class"] == "scaled_flatten"
    kwargs = build_config("qrdqn", "SpaceInvaders-ram").algorithm_kwargs()["policy_kwargs"]
    assert kwargs["features_extractor_class"] is ScaledFlattenExtractor
    assert set(hp) <= set(SCHEMAS["qrdqn"].fields)
    assert QRDQN  # sb3-contrib is the QR-DQN implementation


def test_zips_naming_the_ram_extractors_old_module_still_load_it() -> None:
    # SB3 pickles policy_kwargs: zips saved before the rename name zoo.networks.
    assert pickle.loads(b"czoo.networks\nScaledFlattenExtractor\n.") is ScaledFlattenExtractor


def test_config_dict_round_trips_as_hyperparams_file(
    write_yaml: Callable[[str, str], Path],
) -> None:
    original = build_config("a2c", "Breakout", overrides=["policy_kwargs.net_arch=[64]"])
    path = write_yaml("config.yml", dump_yaml(original.to_dict()))
    again = build_config("a2c", "Breakout", hyperparams_file=path)
    assert again.to_dict() == original.to_dict()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["learning_rat=1e-3"],
            "--set learning_rat=1e-3: unknown key 'learning_rat' (did you mean 'learning_rate'?); valid keys: n_timesteps, policy",
        ),
        (
            ["batch_size=abc"],
            "--set batch_size=abc: key 'batch_size': expected an integer, got 'abc' (str)",
        ),
        (["batch_size=0.5"], "key 'batch_size': expected an integer, got 0.5"),
        (["gamma=1.5"], "key 'gamma': must be a finite number >= 0 and <= 1, got 1.5"),
        (["learning_rate=0"], "key 'learning_rate': must be > 0, got 0"),
        (["clip_reward=1"], "key 'clip_reward': expected true or false, got 1 (int)"),
        (["policy=CNN"], "key 'policy': expected one of CnnPolicy, MlpPolicy, got 'CNN'"),
        (
            ["policy_kwargs.optimizer_class=adamm"],
            "key 'policy_kwargs': optimizer_class: expected one of adam,",
        ),
        (
            ["policy_kwargs.foo=1"],
            "key 'policy_kwargs': unknown entry 'foo'; valid entries: net_arch",
        ),
        (["policy_kwargs.net_arch=[64, -1]"], "net_arch: must be >= 1, got -1"),
        (["train_freq=[4, steps]"], "expected an integer or [N, step|episode], got [4, 'steps']"),
        (
            ["buffer_size=100", "n_steps=500"],
            "--set n_steps=500: key 'n_steps': 500 is longer than the replay buffer (100)",
        ),
        (["batch_size"], "--set batch_size: expected KEY=VALUE"),
        (["lr=[1"], "--set lr=[1: invalid YAML"),
    ],
)
def test_validation_errors_name_source_and_key(overrides: list[str], expected: str) -> None:
    with pytest.raises(UserError) as error:
        build_config("dqn", "Breakout", overrides=overrides)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_error_names_file_and_section(write_yaml: Callable[[str, str], Path]) -> None:
    path = write_yaml("bad.yml", "atari:\n  exploration_final_eps: 2\n")
    with pytest.raises(
        UserError, match=r"bad.yml, section 'atari': key 'exploration_final_eps': must be"
    ):
        build_config("dqn", "Breakout", hyperparams_file=path)
    path = write_yaml("flat.yml", "learning_rate: fast\n")
    with pytest.raises(
        UserError,
        match=r"flat.yml: key 'learning_rate': expected a number or a mapping with a type, got 'fast'",
    ):
        build_config("dqn", "Breakout", hyperparams_file=path)
    path = write_yaml("sections.yml", "Breakot:\n  gamma: 0.9\n")
    with pytest.raises(UserError, match=r"section 'Breakot' is not a known env"):
        build_config("dqn", "Breakout", hyperparams_file=path)
    path = write_yaml("syntax.yml", "gamma: [0.9\n")
    with pytest.raises(UserError, match=r"syntax.yml: invalid YAML \(line 2"):
        build_config("dqn", "Breakout", hyperparams_file=path)
    path = write_yaml("mixed.yml", "gamma: 0.9\natari:\n  tau: 0.5\n")
    with pytest.raises(
        UserError, match=r"mixed.yml: mixes hyperparameters with sections \(atari\)"
    ):
        build_config("dqn", "Breakout", hyperparams_file=path)
    with pytest.raises(UserError, match="hyperparameter file not found"):
        build_config("dqn", "Breakout", hyperparams_file=path.with_name("missing.yml"))


def test_a2c_keys_are_not_dqn_keys() -> None:
    with pytest.raises(UserError, match="unknown key 'buffer_size'"):
        build_config("a2c", "Breakout", overrides=["buffer_size=10"])


def test_cnn_policy_needs_pixels() -> None:
    with pytest.raises(UserError, match="CnnPolicy needs image observations"):
        build_config("dqn", "SpaceInvaders-ram", overrides=["policy=CnnPolicy"])


def test_unknown_algo_and_env() -> None:
    with pytest.raises(UserError, match="unknown algo 'sac'"):
        build_config("sac", "Breakout")
    with pytest.raises(UserError, match="did you mean Breakout"):
        build_config("dqn", "Breakot")


def test_config_is_immutable() -> None:
    config = build_config("dqn", "Breakout")
    with pytest.raises(TypeError):
        config.hyperparams["gamma"] = 0.5  # type: ignore[index]


def test_env_backend_defaults_and_names() -> None:
    def vec_env(env: str, *overrides: str) -> str:
        return str(build_config("a2c", env, overrides=list(overrides)).hyperparams["vec_env"])

    assert vec_env("Breakout") == "ale"  # the C++ backend for pixel games
    assert vec_env("ALE/Pong-v5") == "ale"
    assert vec_env("SpaceInvaders-ram") == "dummy" and vec_env("CartPole-v1") == "dummy"
    assert vec_env("Breakout", "vec_env=sb3") == "dummy"  # sb3 names the standard stack
    assert vec_env("Breakout", "vec_env=subproc") == "subproc"
    config = build_config("a2c", "Breakout", overrides=["env_threads=1", "torch_threads=2"])
    assert config.env_settings().env_threads == 1 and config.hyperparams["torch_threads"] == 2
    with pytest.raises(UserError, match="key 'vec_env': ale runs Atari pixel games only"):
        build_config("dqn", "SpaceInvaders-ram", overrides=["vec_env=ale"])
    with pytest.raises(UserError, match="key 'vec_env': expected one of ale, sb3, dummy, subproc"):
        build_config("dqn", "Breakout", overrides=["vec_env=envpool"])
    # ale-py's settings pass; gym-only ones need the SB3 stack
    build_config("dqn", "ALE/Pong-v5", overrides=["env_kwargs.repeat_action_probability=0"])
    with pytest.raises(UserError, match="key 'env_kwargs': difficulty: not supported by vec_env"):
        build_config("dqn", "Breakout", overrides=["env_kwargs.difficulty=1"])
    build_config("dqn", "Breakout", overrides=["vec_env=sb3", "env_kwargs.difficulty=1"])


@pytest.mark.parametrize(
    ("n_envs", "train_freq", "gradient_steps", "expected"),
    [
        (1, 4, 1, (4, 1)),
        (2, 4, 1, (2, 1)),
        (4, 4, 1, (1, 1)),  # one gradient step per vector step of 4 agent steps
        (16, 4, 1, (1, 4)),
        (3, 4, 1, (4, 3)),  # 12 agent steps, 3 gradient steps
        (8, 4, -1, (1, -1)),  # -1: one per transition already
        (4, [2, "episode"], 1, ((2, "episode"), 1)),
    ],
)
def test_off_policy_training_keeps_gradient_steps_per_agent_step(
    n_envs: int, train_freq: Any, gradient_steps: int, expected: tuple[Any, int]
) -> None:
    overrides = [f"n_envs={n_envs}", f"train_freq={train_freq}", f"gradient_steps={gradient_steps}"]
    for algo in ("dqn", "qrdqn"):
        config = build_config(algo, "Breakout", overrides=overrides)
        kwargs = config.algorithm_kwargs()
        assert (kwargs["train_freq"], kwargs["gradient_steps"]) == expected
        assert config.hyperparams["train_freq"] == train_freq  # config.yml keeps zoo's terms
