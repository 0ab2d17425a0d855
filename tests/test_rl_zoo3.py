"""rl-baselines3-zoo's hyperparameter files, read as they are (tests/fixtures/rl_zoo3 holds
rl_zoo3 2.9.2's own Atari sections and some of its others)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from stable_baselines3 import DQN
from stable_baselines3.common.utils import LinearSchedule

from zoo.config.config import build_config
from zoo.config.rl_zoo3 import (
    agent_step_train_freq,
    hyperparams_layer,
    python_kwargs,
    read_hyperparams_file,
)
from zoo.core.errors import UserError
from zoo.envs.stack import make_vec_env_for, resolve_env
from zoo.training.model_setup import build_model

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rl_zoo3"
Zoo = Callable[..., subprocess.CompletedProcess[str]]


def _translated(algo: str, env: str = "Breakout") -> dict[str, object]:
    file = read_hyperparams_file(FIXTURES / f"{algo}.yml")
    assert file.rl_zoo3
    return hyperparams_layer(file, resolve_env(env))[1]


def test_atari_sections_translate_to_zoo_keys() -> None:
    assert _translated("a2c") == {
        "frame_stack": 4,
        "policy": "CnnPolicy",
        "n_envs": 16,
        "n_timesteps": 1e7,
        "ent_coef": 0.01,
        "vf_coef": 0.25,
        "policy_kwargs": {"optimizer_class": "rmsprop_tf_like", "optimizer_kwargs": {"eps": 1e-5}},
    }
    dqn = _translated("dqn")
    assert dqn["learning_rate"] == 1e-4 and dqn["exploration_final_eps"] == 0.01
    assert dqn["optimize_memory_usage"] is False and "env_wrapper" not in dqn
    assert _translated("qrdqn") == {
        "frame_stack": 4,
        "policy": "CnnPolicy",
        "n_timesteps": 1e7,
        "learning_starts": 50000,
        "exploration_fraction": 0.025,
        "optimize_memory_usage": False,
    }


def test_ppo_atari_section_translates_with_both_schedules() -> None:
    assert _translated("ppo") == {
        "frame_stack": 4,
        "policy": "CnnPolicy",
        "n_envs": 8,
        "n_steps": 128,
        "n_epochs": 4,
        "batch_size": 256,
        "n_timesteps": 1e7,
        "learning_rate": {"type": "linear", "initial": 2.5e-4, "final": 0.0},
        "clip_range": {"type": "linear", "initial": 0.1, "final": 0.0},
        "vf_coef": 0.5,
        "ent_coef": 0.01,
    }
    cartpole = _translated("ppo", "CartPole-v1")
    assert cartpole["clip_range"] == {"type": "linear", "initial": 0.2, "final": 0.0}
    assert cartpole["n_epochs"] == 20


def test_ppo_file_loads_into_a_config() -> None:
    config = build_config("ppo", "Breakout", hyperparams_file=FIXTURES / "ppo.yml")
    hyperparams = config.hyperparams
    assert (hyperparams["n_envs"], hyperparams["n_steps"], hyperparams["batch_size"]) == (
        8,
        128,
        256,
    )
    assert config.learning_rate_schedule().value(0) == pytest.approx(2.5e-4)
    assert config.learning_rate_schedule().value(config.n_timesteps) == 0.0
    assert hyperparams["clip_range"] == {"type": "linear", "initial": 0.1, "final": 0.0}


def test_dqn_file_means_plain_sb3_dqn_as_the_sb3_benchmark_preset() -> None:
    from_file = build_config(
        "dqn", "Breakout", hyperparams_file=FIXTURES / "dqn.yml", flags=[("t", "seed", 1)]
    )
    preset = build_config(
        "dqn",
        "Breakout",
        preset="sb3_benchmark",
        flags=[("t", "seed", 1), ("--vec-env", "vec_env", "sb3")],  # rl_zoo3's AtariWrapper
    )
    assert dict(from_file.hyperparams) == dict(preset.hyperparams)
    assert from_file.hyperparams["double_q"] is False
    assert from_file.hyperparams["dueling"] is False
    assert from_file.hyperparams["n_steps"] == 1
    assert from_file.hyperparams["network"] is None


def test_a2c_and_qrdqn_files_load_with_their_values() -> None:
    a2c = build_config("a2c", "Pong", hyperparams_file=FIXTURES / "a2c.yml")
    assert a2c.hyperparams["n_envs"] == 16 and a2c.hyperparams["vf_coef"] == 0.25
    assert a2c.algorithm_kwargs()["policy_kwargs"]["optimizer_class"].__name__ == "RMSpropTFLike"
    lunar = build_config("a2c", "LunarLander-v3", hyperparams_file=FIXTURES / "a2c.yml")
    schedule = lunar.learning_rate_schedule()
    assert schedule.value(0) == pytest.approx(0.00083)
    assert schedule.value(lunar.n_timesteps / 2) == pytest.approx(0.00083 / 2)
    assert schedule.value(lunar.n_timesteps) == 0.0
    qrdqn = build_config("qrdqn", "Breakout", hyperparams_file=FIXTURES / "qrdqn.yml")
    assert qrdqn.hyperparams["learning_starts"] == 50000
    assert qrdqn.hyperparams["policy_kwargs"]["n_quantiles"] == 200


def test_only_the_section_rl_zoo3_picks_applies(write_yaml: Callable[[str, str], Path]) -> None:
    path = write_yaml(
        "mine.yml",
        "default:\n  n_timesteps: !!float 3e5\n  gamma: 0.9\n"
        "CartPole-v1:\n  n_timesteps: !!float 2e4\n",
    )
    config = build_config("dqn", "CartPole-v1", hyperparams_file=path)
    assert config.n_timesteps == 20000
    assert config.hyperparams["gamma"] == 0.99  # not from `default`: rl_zoo3 takes one section


def test_unknown_env_sections_are_skipped_with_one_note(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zoo.config.rl_zoo3._notes_said", set())
    build_config("a2c", "CartPole-v1", hyperparams_file=FIXTURES / "a2c.yml")
    build_config("a2c", "CartPole-v1", hyperparams_file=FIXTURES / "a2c.yml")
    notes = capsys.readouterr().err.strip().splitlines()
    assert notes == [
        f"note: {FIXTURES / 'a2c.yml'}: skipped the sections of envs zoo does not know: "
        "HalfCheetahBulletEnv-v0, Walker2DBulletEnv-v0"
    ]


def test_saved_config_with_the_ordered_dict_tag_reads(
    write_yaml: Callable[[str, str], Path],
) -> None:
    path = write_yaml(
        "config.yml",
        """!!python/object/apply:collections.OrderedDict
- - - batch_size
    - 32
  - - buffer_size
    - 100000
  - - env_wrapper
    - - stable_baselines3.common.atari_wrappers.AtariWrapper:
          terminal_on_life_loss: false
          noop_max: 10
  - - exploration_final_eps
    - 0.01
  - - frame_stack
    - 4
  - - learning_rate
    - 0.0001
  - - n_timesteps
    - 10000000.0
  - - policy
    - CnnPolicy
  - - policy_kwargs
    - dict(net_arch=[256], activation_fn=nn.ReLU)
""",
    )
    config = build_config("dqn", "Breakout", hyperparams_file=path)
    assert config.n_timesteps == 10_000_000
    assert config.hyperparams["terminal_on_life_loss"] is False
    assert config.hyperparams["noop_max"] == 10
    assert config.hyperparams["policy_kwargs"] == {"net_arch": [256], "activation_fn": "relu"}
    assert config.hyperparams["dueling"] is False


def test_other_python_tags_are_never_constructed(write_yaml: Callable[[str, str], Path]) -> None:
    path = write_yaml("evil.yml", "!!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(UserError, match="could not determine a constructor"):
        build_config("dqn", "Breakout", hyperparams_file=path)
    assert not (path.parent / "pwned").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dict(optimizer_class=RMSpropTFLike)", {"optimizer_class": "rmsprop_tf_like"}),
        ("dict(activation_fn=th.nn.Tanh, net_arch=[64, 64])", {"activation_fn": "tanh", "net_arch": [64, 64]}),
        ("dict(net_arch=dict(pi=[64], vf=[64]), ortho_init=False)", {"net_arch": {"pi": [64], "vf": [64]}, "ortho_init": False}),
        ("dict(net_arch=[dict(pi=[64], vf=[64])])", {"net_arch": {"pi": [64], "vf": [64]}}),
        ("dict(log_std_init=-2, features_extractor_class=NatureCNN)", {"log_std_init": -2, "features_extractor_class": "nature_cnn"}),
        ("{'optimizer_kwargs': {'eps': 1e-5}}", {"optimizer_kwargs": {"eps": 1e-5}}),
    ],
)  # fmt: skip
def test_python_strings_are_parsed_and_names_resolved(text: str, expected: object) -> None:
    assert python_kwargs(text, "policy_kwargs", "here") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dict(activation_fn=nn.Mish)", "activation_fn=nn.Mish is not in zoo's registry"),
        ("dict(optimizer_class=__import__('os').system('x'))", "is not a value zoo reads"),
        ("dict(net_arch=[64] * 2)", "is not a value zoo reads"),
        ("dict(net_arch=[64]", "is not Python"),
        ("dict(ortho_init=os.path)", "zoo takes a class name only for"),
        ("[1, 2]", "expected dict(...)"),
    ],
)
def test_bad_python_strings_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(
        UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")
    ):
        python_kwargs(text, "policy_kwargs", "here")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("normalize: true", "key 'normalize': zoo has no VecNormalize"),
        ("env_wrapper: minigrid.wrappers.FlatObsWrapper", "zoo applies no wrapper but AtariWrapper"),
        ("env_wrapper:\n    - stable_baselines3.common.atari_wrappers.AtariWrapper:\n        foo: 1", "AtariWrapper takes no 'foo'"),
        ("learning_rate: exp_0.1", "give a number or lin_<initial value>"),
        ("policy_kwargs: \"dict(activation_fn=nn.Mish)\"", "is not in zoo's registry"),
        ("use_sde: true", "unknown key 'use_sde'"),
        ("callback: rl_zoo3.callbacks.ParallelTrainCallback", "key 'callback'"),
    ],
)  # fmt: skip
def test_what_zoo_cannot_honour_is_one_line_and_exit_2(
    in_process: Zoo, tmp_path: Path, section: str, message: str
) -> None:
    (tmp_path / "mine.yml").write_text(f"atari:\n  n_timesteps: !!float 1e4\n  {section}\n")
    result = in_process(
        "schedule", "--algo", "a2c", "--env", "Breakout", "--hyperparams-file", "mine.yml"
    )
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_atari_wrapper_needs_an_atari_game(write_yaml: Callable[[str, str], Path]) -> None:
    path = write_yaml(
        "mine.yml",
        f"CartPole-v1:\n  env_wrapper: {'stable_baselines3.common.atari_wrappers.AtariWrapper'}\n",
    )
    with pytest.raises(UserError, match="AtariWrapper is for Atari pixel games, not CartPole-v1"):
        build_config("a2c", "CartPole-v1", hyperparams_file=path)


def test_atari_wrapper_arguments_become_preprocessing_keys(
    write_yaml: Callable[[str, str], Path],
) -> None:
    path = write_yaml(
        "mine.yml",
        "atari:\n  env_wrapper:\n    - stable_baselines3.common.atari_wrappers.AtariWrapper:\n"
        "        terminal_on_life_loss: false\n        clip_reward: false\n        frame_skip: 3\n"
        "        screen_size: 64\n        action_repeat_probability: 0.25\n  frame_stack: 2\n",
    )
    hyperparams = build_config("a2c", "Breakout", hyperparams_file=path).hyperparams
    assert (hyperparams["terminal_on_life_loss"], hyperparams["clip_reward"]) == (False, False)
    assert (hyperparams["frame_skip"], hyperparams["screen_size"], hyperparams["frame_stack"]) == (
        3,
        64,
        2,
    )
    assert hyperparams["env_kwargs"] == {"repeat_action_probability": 0.25}


def test_zoo_files_keep_zoo_semantics(write_yaml: Callable[[str, str], Path]) -> None:
    path = write_yaml("mine.yml", "atari:\n  n_timesteps: 1e6\n  learning_rate: 2e-4\n")
    assert not read_hyperparams_file(path).rl_zoo3
    hyperparams = build_config("dqn", "Breakout", hyperparams_file=path).hyperparams
    assert hyperparams["double_q"] is True and hyperparams["n_steps"] == 3


# An rl_zoo3 DQN section with several envs: train_freq counts vector steps of 4 envs.
VECTOR_STEP_FILE = """CartPole-v1:
  n_envs: 4
  n_timesteps: !!float 1e5
  policy: 'MlpPolicy'
  buffer_size: 2000
  learning_starts: 100
  batch_size: 16
  train_freq: 4
  gradient_steps: 1
"""


@pytest.mark.parametrize(("train_freq", "gradient_steps"), [("4", 1), ("[4, step]", 2), ("4", -1)])
def test_train_freq_counts_vector_steps_as_in_rl_zoo3(
    write_yaml: Callable[[str, str], Path], train_freq: str, gradient_steps: int
) -> None:
    """The model zoo builds from an rl_zoo3 file is the one rl_zoo3 builds: rl_zoo3 hands the
    file's values to SB3's constructor as they are, so it takes the same gradient steps."""
    text = VECTOR_STEP_FILE.replace("train_freq: 4", f"train_freq: {train_freq}")
    text = text.replace("gradient_steps: 1", f"gradient_steps: {gradient_steps}")
    path = write_yaml("dqn.yml", text)
    config = build_config("dqn", "CartPole-v1", hyperparams_file=path, overrides=["seed=0"])
    section = yaml.safe_load(text.replace("!!float ", ""))["CartPole-v1"]
    sb3_kwargs = {key: section[key] for key in ("buffer_size", "learning_starts", "batch_size")}
    frequency = section["train_freq"]
    sb3_kwargs["train_freq"] = tuple(frequency) if isinstance(frequency, list) else frequency
    sb3_kwargs["gradient_steps"] = section["gradient_steps"]
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    other_env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    try:
        zoo_model = build_model(config, env, "cpu")
        sb3_model = DQN("MlpPolicy", other_env, seed=0, device="cpu", **sb3_kwargs)
        assert (zoo_model.train_freq, zoo_model.gradient_steps) == (
            sb3_model.train_freq,
            sb3_model.gradient_steps,
        )
        zoo_model.learn(640)
        sb3_model.learn(640)
        assert zoo_model._n_updates == sb3_model._n_updates > 0
    finally:
        env.close()
        other_env.close()


def test_episode_train_freq_is_not_converted() -> None:
    assert agent_step_train_freq([1, "episode"], 4) == [1, "episode"]
    assert agent_step_train_freq(4, 1) == 4 and agent_step_train_freq(4.0, 3) == 12
    assert agent_step_train_freq("four", 4) == "four"  # zoo's validation refuses it


def test_a_clip_range_vf_schedule_decays_as_in_rl_zoo3(
    write_yaml: Callable[[str, str], Path],
) -> None:
    path = write_yaml(
        "ppo.yml",
        "CartPole-v1:\n  n_envs: 2\n  n_timesteps: 256\n  policy: 'MlpPolicy'\n"
        "  n_steps: 32\n  batch_size: 64\n  n_epochs: 1\n  clip_range_vf: lin_0.2\n",
    )
    config = build_config("ppo", "CartPole-v1", hyperparams_file=path, overrides=["seed=0"])
    assert config.hyperparams["clip_range_vf"] == {"type": "linear", "initial": 0.2, "final": 0.0}
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    try:
        model = build_model(config, env, "cpu")
        assert model.clip_range_vf(1.0) == pytest.approx(0.2)
        model.learn(128)  # the last gradient phase at step 128 of the file's 256
    finally:
        env.close()
    # rl_zoo3's lin_0.2 is SB3's linear schedule of the progress remaining, 1 - 128 / 256
    expected = LinearSchedule(0.2, 0.0, 1.0)(1 - 128 / 256)
    assert model.clip_range_vf(1.0) == pytest.approx(expected) == pytest.approx(0.1)


@pytest.mark.parametrize("algo", ["dqn", "a2c", "ppo", "qrdqn"])
def test_atari_files_train_on_sb3s_atari_wrapper_with_one_note(
    algo: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zoo.config.rl_zoo3._notes_said", set())
    file = FIXTURES / f"{algo}.yml"
    assert build_config(algo, "Breakout", hyperparams_file=file).hyperparams["vec_env"] == "dummy"
    build_config(algo, "Pong", hyperparams_file=file)
    notes = [line for line in capsys.readouterr().err.splitlines() if "AtariWrapper" in line]
    assert notes == [
        f"note: {file}, section 'atari' (rl_zoo3 format), key 'env_wrapper': SB3's AtariWrapper, "
        "so training runs on it (vec_env: sb3) as under rl_zoo3; --vec-env ale trains on "
        "zoo's faster C++ backend"
    ]


def test_the_users_vec_env_wins_without_a_note(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zoo.config.rl_zoo3._notes_said", set())
    file = FIXTURES / "ppo.yml"
    flag = build_config(
        "ppo", "Breakout", hyperparams_file=file, flags=[("--vec-env", "vec_env", "ale")]
    )
    by_set = build_config("ppo", "Breakout", hyperparams_file=file, overrides=["vec_env=ale"])
    assert flag.hyperparams["vec_env"] == by_set.hyperparams["vec_env"] == "ale"
    cartpole = build_config("ppo", "CartPole-v1", hyperparams_file=file)  # no AtariWrapper
    assert cartpole.hyperparams["vec_env"] == "dummy"
    assert "AtariWrapper" not in capsys.readouterr().err
