"""Real `zoo train` subprocess runs on Atari ROMs, and every bad input a user can type."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch as th
import yaml
from sb3_contrib import QRDQN
from stable_baselines3 import A2C, DQN, PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO, SHORT_DQN
from zoo.cli import build_parser
from zoo.commands.options import CONFIG_OPTIONS
from zoo.commands.train import TRAIN_OPTIONS, refuse_with_resume
from zoo.config.config import build_config
from zoo.core.errors import UserError
from zoo.runs.folders import start_run
from zoo.training.train import TrainOptions, train

Zoo = Callable[..., subprocess.CompletedProcess[str]]

# Rollouts of 2 envs x 32 steps, one epoch of one minibatch: as many env steps as A2C's run.
SHORT_PPO = [
    "-n", "1200", "--n-envs", "2",
    "--set", "n_steps=32", "--set", "batch_size=64", "--set", "n_epochs=1",
]  # fmt: skip
SHORT_RUNS = {
    "dqn": (DQN, ["-n", "600", *SHORT_DQN]),
    "qrdqn": (QRDQN, ["-n", "600", *SHORT_DQN, "--set", "policy_kwargs.n_quantiles=20"]),
    "a2c": (A2C, ["-n", "1200", "--n-envs", "2"]),
    "ppo": (PPO, SHORT_PPO),
}


def _scalars(run_dir: Path) -> dict[str, list[int]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _state(model_path: Path, algo: type) -> dict[str, th.Tensor]:
    return algo.load(model_path, device="cpu").policy.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(SHORT_RUNS))
def test_short_breakout_run(algo: str, zoo: Zoo, tmp_path: Path) -> None:
    algo_class, args = SHORT_RUNS[algo]
    result = zoo("train", "--algo", algo, "--env", "Breakout", "--seed", "3", *args)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / algo / "BreakoutNoFrameskip-v4_1"
    assert f"Run folder: logs/{algo}/BreakoutNoFrameskip-v4_1" in result.stdout

    # plain SB3 loads the model
    model = algo_class.load(run_dir / "final_model.zip", device="cpu")
    assert model.observation_space.shape == (4, 84, 84)
    assert model.num_timesteps >= int(args[1])

    info = yaml.safe_load((run_dir / "run.yml").read_text())
    assert info["status"] == "finished" and info["algo"] == algo and info["seed"] == 3
    assert info["command"].startswith(f"zoo train --algo {algo} --env Breakout")
    assert list((run_dir / "monitor").glob("*.monitor.csv"))

    scalars = _scalars(run_dir)
    assert scalars["episode/score"], "no finished game reached TensorBoard"
    assert "rollout/ep_rew_mean" in scalars and "time/fps" in scalars

    # config.yml reproduces the run: same resolved config, and for DQN the same weights
    again = zoo(
        "train",
        "--algo",
        algo,
        "--env",
        "Breakout",
        "--hyperparams-file",
        str(run_dir / "config.yml"),
    )
    assert again.returncode == 0, again.stderr
    second = run_dir.with_name("BreakoutNoFrameskip-v4_2")
    assert (second / "config.yml").read_text() == (run_dir / "config.yml").read_text()
    if algo == "dqn":
        first_state = _state(run_dir / "final_model.zip", DQN)
        second_state = _state(second / "final_model.zip", DQN)
        assert all(th.equal(first_state[k], second_state[k]) for k in first_state)


@pytest.mark.slow
def test_ram_run(zoo: Zoo, tmp_path: Path) -> None:
    result = zoo(
        "train", "--algo", "dqn", "--env", "SpaceInvaders-ram", "-n", "500", *SHORT_DQN, "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # --quiet
    model = DQN.load(tmp_path / "logs/dqn/SpaceInvaders-ramNoFrameskip-v4_1/final_model.zip")
    assert model.observation_space.shape == (384,)
    assert [m.out_features for m in model.q_net.q_net if hasattr(m, "out_features")] == [
        512,
        128,
        6,
    ]


BAD_INPUTS = [
    (["--algo", "sac", "--env", "Breakout"], "argument --algo: invalid choice: 'sac'"),
    (["--algo", "dqn", "--env", "Breakot"], "unknown env 'Breakot': did you mean Breakout"),
    (
        ["--algo", "dqn", "--env", "Breakout", "--set", "gama=0.9"],
        "unknown key 'gama' (did you mean 'gamma'?)",
    ),
    (
        ["--algo", "dqn", "--env", "Breakout", "--set", "gamma=high"],
        "key 'gamma': expected a number",
    ),
    (
        ["--algo", "dqn", "--env", "Breakout", "--hyperparams-file", "nope.yml"],
        "hyperparameter file not found: nope.yml",
    ),
    (
        ["--algo", "dqn", "--env", "Breakout", "-n", "0"],
        "-n/--timesteps: key 'n_timesteps': must be >= 1, got 0",
    ),
    (
        ["--algo", "dqn", "--env", "Breakout", "-n", "ten"],
        "argument -n/--timesteps: invalid int value",
    ),
    (["--algo", "dqn", "--env", "Breakout", "--device", "cuda"], "--device cuda: no CUDA GPU"),
    (["--env", "Breakout"], "train needs --algo and --env"),
    (
        ["--algo", "dqn", "--env", "CartPole-v1", "--vec-env", "ale"],
        "--vec-env: key 'vec_env': ale runs Atari pixel games only; CartPole-v1 keeps",
    ),
    (
        ["--algo", "a2c", "--env", "Breakout", "--vec-env", "fast"],
        "argument --vec-env: invalid choice: 'fast'",
    ),
    (
        ["--algo", "a2c", "--env", "Breakout", "--set", "env_kwargs.mode=1"],
        "key 'env_kwargs': mode: not supported by vec_env ale",
    ),
    (
        ["--algo", "a2c", "--env", "Breakout", "--set", "torch_threads=0"],
        "key 'torch_threads': must be >= 1 and <= 1024, got 0",
    ),
    (
        ["--algo", "ppo", "--env", "Breakout", "--n-envs", "1"],
        "key 'batch_size': 256 is larger than a rollout (n_steps 128 x n_envs 1 = 128",
    ),
    (
        ["--algo", "ppo", "--env", "Breakout", "--set", "clip_range=1.5"],
        "key 'clip_range': schedule values must be >= 0 and <= 1, got 1.5",
    ),
    (
        ["--algo", "ppo", "--env", "Breakout", "--set", "clip_range=0"],
        "key 'clip_range': must be > 0, got 0",
    ),
    (
        ["--algo", "ppo", "--env", "Pong", "--set", "clip_range.final=0.2"],
        "key 'clip_range': linear decay: final (0.2) is larger than initial (0.1)",
    ),
    (
        ["--algo", "ppo", "--env", "CartPole-v1", "--set", "batch_size=1"],
        "key 'batch_size': normalize_advantage needs minibatches of 2 or more",
    ),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, in_process: Zoo, tmp_path: Path
) -> None:
    if "cuda" in args and th.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = in_process("train", *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()  # nothing created for a rejected command


@pytest.mark.slow
@pytest.mark.parametrize(("args", "expected"), [BAD_INPUTS[0], BAD_INPUTS[1]])
def test_the_real_command_answers_bad_input_with_one_line_and_exit_2(
    args: list[str], expected: str, zoo: Zoo, tmp_path: Path
) -> None:
    # The cases above run in this process; a parser error and a refused value here prove
    # that a real `zoo` process prints the same one line and exits 2.
    result = zoo("train", *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_bad_hyperparams_file_names_file_and_section(
    in_process: Zoo, write_yaml: Callable[[str, str], Path]
) -> None:
    write_yaml("mine.yml", "atari:\n  batch_size: many\n")
    result = in_process(
        "train", "--algo", "a2c", "--env", "Breakout", "--hyperparams-file", "mine.yml"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "zoo: error: mine.yml, section 'atari': unknown key 'batch_size'; valid keys: "
        + result.stderr.split("valid keys: ")[1].strip()
    )


def test_help_explains_every_option(in_process: Zoo) -> None:
    top = in_process("--help")
    assert top.returncode == 0 and "train" in top.stdout and "envs" in top.stdout
    train_help = in_process("train", "--help").stdout
    for option in (
        "--algo",
        "--env",
        "--timesteps",
        "--seed",
        "--device",
        "--n-envs",
        "--set",
        "--hyperparams-file",
        "--log-dir",
        "--quiet",
    ):
        assert option in train_help
    assert "Breakout" in in_process("envs").stdout


def test_help_imports_neither_torch_nor_sb3() -> None:
    """`zoo --help` is quick: commands import what they run inside `run`, not to parse."""
    code = """
import sys
from zoo import cli
from zoo.commands import COMMANDS
cli.build_parser()
for argv in (["--help"], *([c.__name__.rsplit(".", 1)[1], "--help"] for c in COMMANDS)):
    try:
        cli.main(argv)
    except SystemExit:
        pass
print(sorted({"torch", "stable_baselines3"} & set(sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_resume_refuses_every_declared_option_that_changes_the_config(tmp_path: Path) -> None:
    """train --resume names what it refuses from the option declarations, not a copy."""
    values = {"--algo": "dqn", "--hyperparams-file": "f.yml", "--vec-env": "sb3"}
    for option in (*CONFIG_OPTIONS, *TRAIN_OPTIONS):
        if option.with_resume:
            continue
        value = [] if option.settings.get("action") == "store_true" else ["1"]
        value = [values[option.flags[-1]]] if option.flags[-1] in values else value
        args = build_parser().parse_args(["train", "--resume", "run", option.flags[-1], *value])
        with pytest.raises(UserError, match=f"; {option.shown} cannot be combined"):
            refuse_with_resume(args)


@pytest.mark.slow
def test_ctrl_c_saves_model_and_config(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zoo",
            "train",
            "--algo",
            "dqn",
            "--env",
            "Breakout",
            "-n",
            "1000000",
            *SHORT_DQN,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = tmp_path / "logs/dqn/BreakoutNoFrameskip-v4_1"
    deadline = time.monotonic() + 120
    while not (run_dir / "progress.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # let it learn a little
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Interrupted at step" in stdout and "final_model.zip" in stdout
    info = yaml.safe_load((run_dir / "run.yml").read_text())
    assert info["status"] == "interrupted" and 0 < info["timesteps"] < 1_000_000
    assert DQN.load(run_dir / "final_model.zip").num_timesteps == info["timesteps"]
    assert (run_dir / "config.yml").is_file()


def test_progress_bar_shows_steps_rate_and_score(tmp_path: Path) -> None:
    config = build_config(
        "a2c", "CartPole-v1", overrides=["n_timesteps=3000", "n_envs=2", "seed=0"]
    )
    run = start_run(tmp_path, config, "cpu", ["train"])
    stream = io.StringIO()
    result = train(config, run, TrainOptions(device="cpu", progress_stream=stream))
    output = stream.getvalue()
    assert result.timesteps >= 3000
    assert "3.00k/3.00k" in output and "step/s" in output
    assert "score" in output and "games" in output


def test_readme_test_command_matches_ci() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci/run").read_text()
    scripts = {
        name: (REPO / "scripts" / f"{name}.sh").read_text() for name in ("install", "test", "train")
    }
    install_and_test = readme.split("## Install and test")[1].split("##")[0]
    assert "bash scripts/test.sh" in install_and_test and "bash scripts/test.sh" in ci
    assert "bash scripts/train.sh" in readme.split("## Install and train")[1].split("##")[0]
    # PyTorch's CPU build first, so that the package's torch range pulls no CUDA build.
    install = scripts["install"]
    assert install.index("pip install torch==2.13.0") < install.index(
        'pip install -e ".[dev,mlflow,wandb,slurm]"'
    )
    assert "bash scripts/install.sh" in scripts["test"] and "python -m pytest" in scripts["test"]
    assert "bash scripts/install.sh" in scripts["train"] and "zoo train" in scripts["train"]
