"""trpo (sb3-contrib's TRPO) on every path of zoo: a real Breakout run through the CLI and
what reads it (enjoy, resume, plot, report); the model sb3-contrib builds from rl_zoo3's and
zoo's settings; the tune space; a benchmark cell; rl_zoo3's file; the keys it refuses."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch as th
import yaml
from sb3_contrib import TRPO
from stable_baselines3.common.base_class import BaseAlgorithm

from tests.conftest import wait_for_the_next_second
from zoo.algorithms.algos import ZooTRPO
from zoo.algorithms.model_loading import load_model
from zoo.config.choice import ConfigChoice
from zoo.config.config import Config, build_config
from zoo.envs.stack import make_vec_env_for
from zoo.training.model_setup import build_model
from zoo.tune import TuneSettings, load_search_space, trial_config

Zoo = Callable[..., subprocess.CompletedProcess[str]]
RL_ZOO3_TRPO = Path(__file__).resolve().parent / "fixtures" / "rl_zoo3" / "trpo.yml"
TRPO_SETTINGS = ("n_steps", "batch_size", "gamma", "gae_lambda", "target_kl", "cg_max_steps",
                 "cg_damping", "line_search_shrinking_factor", "line_search_max_iter",
                 "n_critic_updates", "normalize_advantage", "sub_sampling_factor")  # fmt: skip


@pytest.mark.slow
def test_breakout_run_plays_resumes_plots_and_reports(
    zoo: Zoo, in_process: Zoo, tmp_path: Path
) -> None:
    result = zoo(
        "train", "--algo", "trpo", "--env", "Breakout", "--seed", "3", "-n", "256",
        "--n-envs", "2", "--set", "n_steps=64", "--set", "save_freq=128", "--set", "eval_freq=128",
        "--set", "eval_episodes=1", "--set", "eval_max_frames=2000", "--set", "log_freq=64",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / "trpo" / "BreakoutNoFrameskip-v4_1"
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    assert (config["target_kl"], config["cg_damping"], config["n_critic_updates"]) == (
        0.001,
        0.001,
        3,
    )
    assert config["vec_env"] == "ale" and config["eval_actions"] == "sampled"

    plain = TRPO.load(run_dir / "final_model.zip", device="cpu")  # sb3-contrib reads it
    assert plain.observation_space.shape == (4, 84, 84) and plain.num_timesteps == 256
    assert isinstance(load_model(run_dir / "final_model.zip", device="cpu"), ZooTRPO)

    played = in_process("enjoy", "--algo", "trpo", "--env", "Breakout", "--episodes", "1",
                        "--no-render")  # fmt: skip
    assert played.returncode == 0, played.stderr
    wait_for_the_next_second()
    resumed = in_process("train", "--resume", str(run_dir), "-n", "512")
    assert resumed.returncode == 0, resumed.stderr
    assert "at step 256 of 512" in resumed.stdout
    with open(run_dir / "evaluations.csv", newline="") as file:
        assert [int(row["step"]) for row in csv.DictReader(file)] == [128, 256, 384, 512]

    plotted = in_process("plot", str(run_dir), "--panels", "lr", "-o", "trpo.png")
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "trpo.png").stat().st_size > 0
    reported = in_process("report")
    assert reported.returncode == 0, reported.stderr
    row = next(line for line in reported.stdout.splitlines() if line.startswith("| trpo/"))
    assert row.startswith("| trpo/BreakoutNoFrameskip-v4_1 | trpo | Breakout | 512 |")


def _assert_same_model(zoo_model: BaseAlgorithm, contrib: BaseAlgorithm) -> None:
    """The same policy class, initial weights, optimizer settings and TRPO settings."""
    assert type(zoo_model.policy) is type(contrib.policy)
    ours, theirs = zoo_model.policy.state_dict(), contrib.policy.state_dict()
    assert list(ours) == list(theirs)
    for name, weights in ours.items():
        assert th.equal(weights, theirs[name]), name
    for key in TRPO_SETTINGS:
        assert getattr(zoo_model, key) == getattr(contrib, key), key
    skipped = {"params", "fused"}  # fused: the same Adam step in one kernel
    groups = [zoo_model.policy.optimizer.param_groups, contrib.policy.optimizer.param_groups]
    settings = [[{k: v for k, v in g.items() if k not in skipped} for g in gs] for gs in groups]
    assert settings[0] == settings[1]


def _built(config: Config, contrib_kwargs: dict[str, object]) -> tuple[BaseAlgorithm, ...]:
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    zoo_model = build_model(config, env, "cpu")
    contrib = TRPO(config.policy, env, seed=config.seed, device="cpu", **contrib_kwargs)  # type: ignore[arg-type]
    env.close()
    return zoo_model, contrib


def test_rl_zoo3s_cartpole_settings_build_the_model_sb3_contrib_builds() -> None:
    config = build_config(
        "trpo", "CartPole-v1", hyperparams_file=RL_ZOO3_TRPO, overrides=["seed=1"]
    )
    # rl_zoo3's tuned CartPole-v1 section, written out as sb3-contrib's own arguments
    zoo_model, contrib = _built(
        config,
        {"n_steps": 512, "batch_size": 512, "cg_damping": 1e-3, "gae_lambda": 0.98,
         "gamma": 0.99, "learning_rate": 1e-3, "n_critic_updates": 20},
    )  # fmt: skip
    _assert_same_model(zoo_model, contrib)
    assert zoo_model.lr_step_schedule.value(0) == contrib.lr_schedule(1.0) == 1e-3


def test_zoos_atari_settings_build_the_model_sb3_contrib_builds() -> None:
    config = build_config("trpo", "Breakout", overrides=["seed=1", "n_envs=2"])
    # hyperparams/trpo.yml's atari section (Baselines' Atari TRPO), as sb3-contrib's arguments
    zoo_model, contrib = _built(
        config,
        {"n_steps": 512, "batch_size": 64, "target_kl": 0.001, "cg_max_steps": 10,
         "cg_damping": 1e-3, "gamma": 0.98, "gae_lambda": 1.0, "n_critic_updates": 3,
         "learning_rate": 1e-4},
    )  # fmt: skip
    _assert_same_model(zoo_model, contrib)
    assert zoo_model.lr_step_schedule.value(5000) == contrib.lr_schedule(0.5) == 1e-4


# fused_adam: the same Adam step up to rounding, which can turn a sampled action of the next
# rollout; so one rollout and its update with it, two without it (then the weights are equal).
@pytest.mark.parametrize(("fused_adam", "steps"), [(True, 128), (False, 256)])
def test_a_training_phase_takes_the_steps_sb3_contrib_takes(fused_adam: bool, steps: int) -> None:
    config = build_config(
        "trpo", "CartPole-v1",
        overrides=["seed=2", "n_envs=2", "n_steps=64", "batch_size=64", f"fused_adam={fused_adam}"],
    )  # fmt: skip
    models = []
    for build in ("zoo", "sb3-contrib"):
        env = make_vec_env_for(config.env, config.env_settings(), seed=config.seed)
        if build == "zoo":
            model = build_model(config, env, "cpu")
        else:
            # with the shipped CartPole-v1 section (rl_zoo3's tuned one) under the overrides
            model = TRPO("MlpPolicy", env, n_steps=64, batch_size=64, cg_damping=1e-3,
                         gae_lambda=0.98, n_critic_updates=20, seed=2, device="cpu")  # fmt: skip
        initial = {name: weights.clone() for name, weights in model.policy.state_dict().items()}
        model.learn(steps)  # the rollouts, their policy steps and critic updates
        env.close()
        models.append(model)
    ours, theirs = models[0].policy.state_dict(), models[1].policy.state_dict()
    assert any(not th.equal(weights, initial[name]) for name, weights in theirs.items())
    for name, weights in ours.items():
        if fused_adam:
            th.testing.assert_close(weights, theirs[name], rtol=1e-5, atol=1e-6, msg=name)
        else:
            assert th.equal(weights, theirs[name]), name


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("ent_coef=0.01", "key 'ent_coef' does not apply here: TRPO has no entropy bonus"),
        ("clip_range=0.2", "TRPO bounds its policy step by target_kl"),
        ("target_kl=0", "key 'target_kl'"),
        ("policy=CnnLstmPolicy", "expected one of CnnPolicy, MlpPolicy"),
    ],
)
def test_what_trpo_does_not_take_is_one_line_and_exit_2(
    in_process: Zoo, tmp_path: Path, setting: str, message: str
) -> None:
    result = in_process("train", "--algo", "trpo", "--env", "Breakout", "-n", "1", "--set", setting)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("env", ["Breakout", "CartPole-v1"])
def test_tune_space_gives_valid_configs(env: str) -> None:
    space = load_search_space("trpo")
    settings = TuneSettings(ConfigChoice("trpo", env), trials=1, trial_steps=5000)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    drawn = set()
    for number in range(20):
        trial = study.ask()
        config = trial_config(settings, space.suggest(trial, settings.trial_steps), number)
        drawn.add(config.hyperparams["target_kl"])
        config.algorithm_kwargs()
        study.tell(trial, 0.0)
    assert len(drawn) > 1


def test_benchmark_cell_is_scored_with_sampled_actions(in_process: Zoo, tmp_path: Path) -> None:
    result = in_process(
        "benchmark", "--algos", "trpo", "--envs", "CartPole-v1", "--seeds", "0", "-n", "512",
        "--set", "eval_freq=256", "--set", "eval_episodes=2", "--set", "torch_threads=1",
        "--set", "n_steps=128", "--set", "batch_size=128", "--set", "eval_actions=sampled",
        "--eval-games", "2", "--name", "small",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    grid_dir = tmp_path / "logs" / "benchmark" / "small"
    with open(grid_dir / "results.csv", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["status"] == "finished" and row["steps"] == "512"
    assert row["shown_actions"] == "sampled"
    assert "| trpo | CartPole-v1 |" in (grid_dir / "results.md").read_text()


def test_rl_zoo3_file_reads_its_sections() -> None:
    cartpole = build_config("trpo", "CartPole-v1", hyperparams_file=RL_ZOO3_TRPO).hyperparams
    assert (cartpole["n_envs"], cartpole["n_steps"], cartpole["n_critic_updates"]) == (2, 512, 20)
    assert (cartpole["cg_damping"], cartpole["gae_lambda"], cartpole["learning_rate"]) == (
        1e-3,
        0.98,
        1e-3,
    )
    # rl_zoo3's file has no atari section: a game takes its `default` (MlpPolicy, 1M steps)
    breakout = build_config("trpo", "Breakout", hyperparams_file=RL_ZOO3_TRPO).hyperparams
    assert (breakout["policy"], breakout["n_timesteps"]) == ("MlpPolicy", 1_000_000)


@pytest.mark.filterwarnings("error:You have specified a mini-batch size")  # sb3-contrib's, replaced
def test_a_batch_size_that_does_not_divide_the_rollout_is_one_note(in_process: Zoo) -> None:
    result = in_process("train", "--algo", "trpo", "--env", "CartPole-v1", "--n-envs", "3",
                        "-n", "1", "--set", "batch_size=1000", "--set", "torch_threads=1",
                        "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        "note: batch_size 1000 does not divide a rollout of n_steps x n_envs = "
        "1536: each critic pass ends with a minibatch of 536"
    )


def test_tune_runs_trials_and_writes_a_best_yml_that_loads(in_process: Zoo, tmp_path: Path) -> None:
    result = in_process(
        "tune", "--algo", "trpo", "--env", "CartPole-v1", "--trials", "2", "--trial-steps", "512",
        "--evals-per-trial", "2", "--seed", "1", "--study", "cp", "--set", "eval_episodes=2",
        "--set", "torch_threads=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" complete in ") == 2, result.stdout
    best = tmp_path / "logs" / "tune" / "cp" / "best.yml"
    config = build_config("trpo", "CartPole-v1", hyperparams_file=best)
    assert config.hyperparams["target_kl"] == yaml.safe_load(best.read_text())["target_kl"]


def test_a_plain_sb3_contrib_zip_is_told_from_ppos_and_a2cs(tmp_path: Path) -> None:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import A2C, PPO

    from zoo.algorithms.algos import ZooA2C, ZooPPO, ZooRecurrentPPO
    from zoo.algorithms.model_loading import algorithm_of

    expected = {TRPO: ZooTRPO, PPO: ZooPPO, A2C: ZooA2C, RecurrentPPO: ZooRecurrentPPO}
    for algorithm, zoo_class in expected.items():
        policy = "MlpLstmPolicy" if algorithm is RecurrentPPO else "MlpPolicy"
        path = tmp_path / f"{algorithm.__name__}.zip"
        batch = {} if algorithm is A2C else {"batch_size": 64}
        algorithm(policy, "CartPole-v1", n_steps=64, device="cpu", **batch).save(path)
        assert algorithm_of(path) is zoo_class
        assert isinstance(load_model(path, device="cpu"), zoo_class)
