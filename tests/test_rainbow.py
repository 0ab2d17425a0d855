"""The rainbow and der presets, and real `zoo` runs of C51 and noisy nets: they learn
CartPole, and each trains on Breakout, plays with enjoy and resumes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy

from tests.conftest import SHORT_DQN, wait_for_the_next_second
from zoo.algorithms.algos import ZooC51, ZooDQN, ZooQRDQN
from zoo.algorithms.distributional import DuelingCategoricalQNetwork
from zoo.algorithms.model_loading import load_model
from zoo.algorithms.noisy import noisy_layers
from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.training.memory_admission import admit_replay_buffer
from zoo.training.model_setup import build_model

Zoo = Callable[..., subprocess.CompletedProcess[str]]


def test_rainbow_preset_is_table_1_in_agent_steps() -> None:
    config = build_config("c51", "Breakout", preset="rainbow")
    hyperparams = config.hyperparams
    frames_per_step = hyperparams["frame_skip"]
    assert frames_per_step == 4
    assert hyperparams["learning_starts"] * frames_per_step == 80_000
    assert hyperparams["target_update_interval"] * frames_per_step == 32_000
    assert hyperparams["n_timesteps"] * frames_per_step == 200_000_000
    assert hyperparams["learning_rate"] == 6.25e-5
    assert hyperparams["policy_kwargs"]["optimizer_kwargs"] == {"eps": 1.5e-4}
    assert hyperparams["policy_kwargs"]["optimizer_class"] == "adam"
    assert (hyperparams["n_steps"], hyperparams["priority_alpha"]) == (3, 0.5)
    beta = config.priority_beta_schedule()
    assert beta is not None
    assert beta.value(0) == 0.4 and beta.value(config.n_timesteps) == 1.0
    assert (hyperparams["noisy"], hyperparams["noisy_sigma"]) == (True, 0.5)
    assert (hyperparams["n_atoms"], hyperparams["v_min"], hyperparams["v_max"]) == (51, -10, 10)
    assert hyperparams["double_q"] and hyperparams["dueling"] and hyperparams["prioritized_replay"]
    epsilon = config.exploration_schedule()
    assert epsilon is not None and epsilon.value(0) == epsilon.value(10**7) == 0.0
    # 1M transitions in the frame buffer fit a 16 GB machine
    assert admit_replay_buffer(config, available=14 * 10**9) < 7.5e9


def test_der_preset_is_dopamines_der_whole() -> None:
    config = build_config("c51", "Breakout", preset="der")
    hyperparams = config.hyperparams
    assert (hyperparams["noisy"], hyperparams["noisy_sigma"]) == (True, 0.1)
    assert (hyperparams["n_atoms"], hyperparams["v_min"], hyperparams["v_max"]) == (51, -10, 10)
    assert (hyperparams["n_steps"], hyperparams["target_update_interval"]) == (10, 2000)
    assert (hyperparams["learning_starts"], hyperparams["n_timesteps"]) == (1600, 100_000)
    epsilon = config.exploration_schedule()
    assert epsilon is not None and epsilon.value(0) == epsilon.value(100_000) == 0.0
    # der_dqn stays beside it, the same schedule on epsilon-greedy DQN
    dqn = build_config("dqn", "Breakout", preset="der_dqn").hyperparams
    for key in ("n_steps", "target_update_interval", "learning_starts", "learning_rate"):
        assert dqn[key] == hyperparams[key], key


def test_rainbow_model_is_built_as_the_paper_says() -> None:
    config = build_config(
        "c51", "Breakout", preset="rainbow", overrides=["buffer_size=1000", "vec_env=dummy"]
    )
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    try:
        model = build_model(config, env, device="cpu")
    finally:
        env.close()
    assert isinstance(model, ZooC51) and model.double_q and model.noisy
    assert isinstance(model.q_net, DuelingCategoricalQNetwork)
    assert model.q_net.support.shape == (51,)
    # value and advantage streams of 512 units, both layers noisy, in online and target nets
    layers = noisy_layers(model.q_net)
    assert [(m.in_features, m.out_features) for m in layers] == [
        (3136, 512), (512, 4 * 51), (3136, 512), (512, 51),
    ]  # fmt: skip
    assert all(
        float(m.weight_sigma.detach()[0, 0]) == pytest.approx(0.5 / m.in_features**0.5)
        for m in layers
    )
    assert model.exploration_rate == 0.0
    optimizer = model.policy.optimizer
    assert type(optimizer) is th.optim.Adam and optimizer.param_groups[0]["eps"] == 1.5e-4


@pytest.mark.slow
def test_c51_learns_cartpole_across_seeds(zoo: Zoo, tmp_path: Path) -> None:
    """C51 with the shipped CartPole-v1 settings (atoms on [0, 100]), 16k steps, seeds 0-2.

    A random policy averages about 22 over 10 deterministic games. Measured on a 2-core VM:
    seeds 0, 1, 2 reach 120.7, 210.1 and 102.5 in about 50 s each; each must pass 75 and
    their mean 100.
    """
    scores = []
    for seed in (0, 1, 2):
        result = zoo(
            "train", "--algo", "c51", "--env", "CartPole-v1", "-n", "16000", "--seed", str(seed),
            "--quiet", "--log-dir", f"seed{seed}", timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        model = load_model(tmp_path / f"seed{seed}/c51/CartPole-v1_1/final_model.zip", "cpu")
        env = gym.make("CartPole-v1")
        env.reset(seed=1000)
        mean_reward, _ = evaluate_policy(model, env, n_eval_episodes=10, warn=False)
        scores.append(float(mean_reward))
    assert min(scores) >= 75 and sum(scores) / 3 >= 100, scores


# Each new algorithm and key on Breakout: 600 steps from pixels, then enjoy and a resume.
CLI_RUNS = {
    "c51": ("c51", ZooC51, ["--set", "n_atoms=21"]),
    "c51_noisy_per": (
        "c51", ZooC51,
        ["--set", "noisy=true", "--set", "prioritized_replay=true", "--set", "n_steps=3",
         "--set", "double_q=true", "--set", "dueling=true"],
    ),
    "dqn_noisy": ("dqn", ZooDQN, ["--set", "noisy=true"]),
    "qrdqn_noisy": (
        "qrdqn", ZooQRDQN, ["--set", "noisy=true", "--set", "policy_kwargs.n_quantiles=20"]
    ),
    "rainbow": ("c51", ZooC51, ["--preset", "rainbow", "--set", "learning_starts=200",
                                "--set", "buffer_size=2000", "--set", "target_update_interval=100"]),
    "der": ("c51", ZooC51, ["--preset", "der", "--set", "noisy_eval=sample",
                            "--set", "eval_episodes=1"]),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CLI_RUNS))
def test_breakout_run_enjoy_and_resume(case: str, zoo: Zoo, tmp_path: Path) -> None:
    algo, algo_class, settings = CLI_RUNS[case]
    common = ["--env", "Breakout", "--seed", "3", "--save-freq", "300", *SHORT_DQN, *settings]
    first = zoo("train", "--algo", algo, "-n", "300", *common, "--set", "eval_freq=0")
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "logs" / algo / "BreakoutNoFrameskip-v4_1"
    model = load_model(run_dir / "final_model.zip", device="cpu")
    assert type(model) is algo_class and model.num_timesteps == 300
    noisy = "noisy=true" in settings or case in ("rainbow", "der")
    assert bool(noisy_layers(model.policy)) is noisy
    if case == "der":
        assert model.policy.noisy_eval == "sample" and model.policy.noisy_sigma == 0.1  # type: ignore[attr-defined]
    if algo != "qrdqn":
        assert DQN.load(run_dir / "final_model.zip", device="cpu").policy is not None

    wait_for_the_next_second()
    resumed = zoo("train", "--resume", str(run_dir), "-n", "600")
    assert resumed.returncode == 0, resumed.stderr
    assert "at step 300 of 600" in resumed.stdout
    again = load_model(run_dir / "final_model.zip", device="cpu")
    assert type(again) is algo_class and again.num_timesteps == 600

    played = zoo(
        "enjoy", "--algo", algo, "--env", "Breakout", "--no-render", "--episodes", "1",
        "--seed", "4", "--model", "final",
    )  # fmt: skip
    assert played.returncode == 0, played.stderr
    assert "game 1: score" in played.stdout
