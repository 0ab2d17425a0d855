"""ppo_lstm (sb3-contrib's RecurrentPPO) on every path of zoo: a real Breakout run through the
CLI and what reads it (enjoy, resume, plot, report); the model sb3-contrib builds from
rl_zoo3's settings; the LSTM state of evaluation games; the tune space; a benchmark cell;
rl_zoo3's file and run folders; the settings refused with one line."""

from __future__ import annotations

import csv
import json
import subprocess
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch as th
import yaml
from sb3_contrib import RecurrentPPO

from tests.conftest import wait_for_the_next_second
from zoo.algorithms.algos import ZooRecurrentPPO
from zoo.algorithms.model_loading import load_model
from zoo.config.choice import ConfigChoice
from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.runs.acting import ActionChooser, GameMemory
from zoo.training.model_setup import build_model
from zoo.tune import TuneSettings, load_search_space, trial_config

Zoo = Callable[..., subprocess.CompletedProcess[str]]
RL_ZOO3_PPO_LSTM = Path(__file__).resolve().parent / "fixtures" / "rl_zoo3" / "ppo_lstm.yml"


@pytest.mark.slow
def test_breakout_run_plays_resumes_plots_and_reports(
    zoo: Zoo, in_process: Zoo, tmp_path: Path
) -> None:
    result = zoo(
        "train", "--algo", "ppo_lstm", "--env", "Breakout", "--seed", "3", "-n", "256",
        "--n-envs", "2", "--set", "n_steps=64", "--set", "batch_size=64", "--set", "n_epochs=2",
        "--set", "save_freq=128", "--set", "eval_freq=128", "--set", "eval_episodes=1",
        "--set", "eval_max_frames=2000", "--set", "log_freq=64",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "logs" / "ppo_lstm" / "BreakoutNoFrameskip-v4_1"
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    assert config["policy"] == "CnnLstmPolicy" and config["terminal_on_life_loss"] is False
    assert config["policy_kwargs"] == {"enable_critic_lstm": False, "lstm_hidden_size": 128}
    assert config["vec_env"] == "ale" and config["eval_actions"] == "sampled"

    plain = RecurrentPPO.load(run_dir / "final_model.zip", device="cpu")  # sb3-contrib reads it
    assert plain.observation_space.shape == (4, 84, 84) and plain.num_timesteps == 256
    model = load_model(run_dir / "final_model.zip", device="cpu")
    assert isinstance(model, ZooRecurrentPPO) and model.policy.lstm_actor.hidden_size == 128

    played = in_process("enjoy", "--algo", "ppo_lstm", "--env", "Breakout", "--episodes", "1",
                        "--no-render")  # fmt: skip
    assert played.returncode == 0, played.stderr
    assert "1 games: mean" in played.stdout
    wait_for_the_next_second()
    resumed = in_process("train", "--resume", str(run_dir), "-n", "512")
    assert resumed.returncode == 0, resumed.stderr
    assert "at step 256 of 512" in resumed.stdout
    assert load_model(run_dir / "final_model.zip", device="cpu").num_timesteps == 512
    with open(run_dir / "evaluations.csv", newline="") as file:
        assert [int(row["step"]) for row in csv.DictReader(file)] == [128, 256, 384, 512]

    plotted = in_process("plot", str(run_dir), "--panels", "clip", "entropy", "-o", "lstm.png")
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "lstm.png").stat().st_size > 0
    reported = in_process("report")
    assert reported.returncode == 0, reported.stderr
    row = next(line for line in reported.stdout.splitlines() if line.startswith("| ppo_lstm/"))
    assert row.startswith("| ppo_lstm/BreakoutNoFrameskip-v4_1 | ppo_lstm | Breakout | 512 |")


def _linear(initial: float) -> Callable[[float], float]:
    """rl_zoo3's `lin_X`: X times the progress remaining."""
    return lambda progress: progress * initial


def test_rl_zoo3s_atari_settings_build_the_model_sb3_contrib_builds() -> None:
    config = build_config(
        "ppo_lstm",
        "Breakout",
        hyperparams_file=RL_ZOO3_PPO_LSTM,
        overrides=["seed=1", "n_envs=2"],
    )
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    zoo_model = build_model(config, env, "cpu")
    # rl_zoo3's atari section, written out as sb3-contrib's own arguments
    contrib = RecurrentPPO(
        "CnnLstmPolicy", env, n_steps=128, n_epochs=4, batch_size=256,
        learning_rate=_linear(2.5e-4), clip_range=_linear(0.1), vf_coef=0.5, ent_coef=0.01,
        policy_kwargs={"enable_critic_lstm": False, "lstm_hidden_size": 128}, seed=1,
        device="cpu",
    )  # fmt: skip
    env.close()
    assert type(zoo_model.policy) is type(contrib.policy)
    ours, theirs = zoo_model.policy.state_dict(), contrib.policy.state_dict()
    assert list(ours) == list(theirs)
    for name, weights in ours.items():  # the same initial weights, layer by layer
        assert th.equal(weights, theirs[name]), name
    assert zoo_model.policy.lstm_critic is None and zoo_model.policy.lstm_actor.hidden_size == 128
    for key in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef",
                "vf_coef", "max_grad_norm", "target_kl", "normalize_advantage"):  # fmt: skip
        assert getattr(zoo_model, key) == getattr(contrib, key), key
    skipped = {"params", "fused"}  # fused: the same Adam step in one kernel
    groups = [zoo_model.policy.optimizer.param_groups, contrib.policy.optimizer.param_groups]
    settings = [[{k: v for k, v in g.items() if k not in skipped} for g in gs] for gs in groups]
    assert settings[0] == settings[1]
    # zoo's schedules of the global step are rl_zoo3's of the progress remaining
    total = config.n_timesteps
    for step in (0, total // 4, total // 2, total):
        progress = 1 - step / total
        assert zoo_model.lr_step_schedule.value(step) == pytest.approx(
            contrib.lr_schedule(progress)
        )
        assert zoo_model.clip_step_schedule.value(step) == pytest.approx(
            contrib.clip_range(progress)
        )


# fused_adam: the same Adam step up to rounding, which can turn a sampled action of the next
# rollout; so one rollout and its update with it, two without it (then the weights are equal).
@pytest.mark.parametrize(("fused_adam", "steps"), [(True, 64), (False, 128)])
def test_a_training_phase_takes_the_steps_sb3_contrib_takes(fused_adam: bool, steps: int) -> None:
    config = build_config(
        "ppo_lstm",
        "CartPole-v1",
        overrides=["seed=2", "n_envs=2", "n_steps=32", "batch_size=32", "n_epochs=2",
                   "policy_kwargs.lstm_hidden_size=16", f"fused_adam={fused_adam}"],
    )  # fmt: skip
    models = []
    for build in ("zoo", "sb3-contrib"):
        env = make_vec_env_for(config.env, config.env_settings(), seed=config.seed)
        if build == "zoo":
            model = build_model(config, env, "cpu")
        else:
            model = RecurrentPPO("MlpLstmPolicy", env, n_steps=32, batch_size=32, n_epochs=2,
                                 policy_kwargs={"lstm_hidden_size": 16}, seed=2, device="cpu")  # fmt: skip
        initial = {name: weights.clone() for name, weights in model.policy.state_dict().items()}
        model.learn(steps)  # the rollouts and their updates
        env.close()
        models.append(model)
    ours, theirs = models[0].policy.state_dict(), models[1].policy.state_dict()
    assert any(not th.equal(weights, initial[name]) for name, weights in theirs.items())
    for name, weights in ours.items():
        if fused_adam:
            th.testing.assert_close(weights, theirs[name], rtol=1e-5, atol=1e-6, msg=name)
        else:
            assert th.equal(weights, theirs[name]), name


def test_a_games_memory_carries_the_lstm_state_and_resets_at_its_start() -> None:
    config = build_config("ppo_lstm", "CartPole-v1", overrides=["seed=0"])
    env = make_vec_env_for(config.env, config.env_settings(), seed=0)
    model = build_model(config, env, "cpu")
    observation = np.asarray(env.reset())
    env.close()
    choose = ActionChooser(model, 0.0, sampled=False)
    memory = GameMemory()
    choose(observation, [np.random.default_rng(0)], [memory])
    assert memory.state is not None and not memory.episode_start
    expected = model.policy.predict(observation, None, np.array([True]))[1]
    assert all(np.array_equal(a, b) for a, b in zip(memory.state, expected, strict=True))
    carried = memory.state
    choose(observation, [np.random.default_rng(0)], [memory])
    assert not np.array_equal(memory.state[0], carried[0])  # the state moved on
    memory.episode_start = True  # a new game: the state starts again from zeros
    choose(observation, [np.random.default_rng(0)], [memory])
    assert all(np.array_equal(a, b) for a, b in zip(memory.state, expected, strict=True))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["frame_stack=1"], "key 'frame_stack': 1 with no LSTM for the critic"),
        (["policy_kwargs.shared_lstm=true", "policy_kwargs.enable_critic_lstm=true"],
         "set enable_critic_lstm: false with it"),
        (["policy=CnnPolicy"], "expected one of CnnLstmPolicy, MlpLstmPolicy"),
    ],
)  # fmt: skip
def test_settings_sb3_contrib_refuses_are_one_line_and_exit_2(
    in_process: Zoo, tmp_path: Path, overrides: list[str], message: str
) -> None:
    # Breakout's shipped critic has no LSTM (rl_zoo3's enable_critic_lstm: false)
    sets = [part for value in overrides for part in ("--set", value)]
    result = in_process("train", "--algo", "ppo_lstm", "--env", "Breakout", "-n", "1", *sets)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_a_critic_with_its_own_lstm_needs_no_frame_stack() -> None:
    config = build_config("ppo_lstm", "CartPole-v1")  # sb3-contrib's enable_critic_lstm: true
    assert config.hyperparams["frame_stack"] == 1
    stacked = build_config(
        "ppo_lstm", "Breakout", overrides=["policy_kwargs.enable_critic_lstm=true", "frame_stack=1"]
    )
    assert stacked.hyperparams["policy_kwargs"]["enable_critic_lstm"] is True


def test_tune_space_gives_valid_configs() -> None:
    space = load_search_space("ppo_lstm")
    settings = TuneSettings(ConfigChoice("ppo_lstm", "Breakout"), trials=1, trial_steps=5000)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    for number in range(20):
        trial = study.ask()
        config = trial_config(settings, space.suggest(trial, settings.trial_steps), number)
        hyperparams = config.hyperparams
        assert (hyperparams["n_steps"] * hyperparams["n_envs"]) % hyperparams["batch_size"] == 0
        assert hyperparams["policy_kwargs"]["lstm_hidden_size"] == 128  # the config's LSTM
        config.algorithm_kwargs()
        study.tell(trial, 0.0)


def test_benchmark_cell_is_scored_with_sampled_actions(in_process: Zoo, tmp_path: Path) -> None:
    result = in_process(
        "benchmark", "--algos", "ppo_lstm", "--envs", "CartPole-v1", "--seeds", "0", "-n", "256",
        "--set", "eval_freq=128", "--set", "eval_episodes=2", "--set", "torch_threads=1",
        "--set", "eval_actions=sampled", "--set", "policy_kwargs.lstm_hidden_size=16",
        "--eval-games", "2", "--name", "small",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    grid_dir = tmp_path / "logs" / "benchmark" / "small"
    with open(grid_dir / "results.csv", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["status"] == "finished" and row["steps"] == "256"
    assert row["final_sampled_mean"] and row["final_greedy_mean"]
    assert "| ppo_lstm | CartPole-v1 |" in (grid_dir / "results.md").read_text()


def test_rl_zoo3_file_reads_with_its_atari_wrapper() -> None:
    config = build_config("ppo_lstm", "Breakout", hyperparams_file=RL_ZOO3_PPO_LSTM)
    hyperparams = config.hyperparams
    assert hyperparams["policy"] == "CnnLstmPolicy" and hyperparams["frame_stack"] == 4
    assert hyperparams["terminal_on_life_loss"] is False and hyperparams["vec_env"] == "dummy"
    assert hyperparams["policy_kwargs"] == {"enable_critic_lstm": False, "lstm_hidden_size": 128}
    assert hyperparams["clip_range"] == {"type": "linear", "initial": 0.1, "final": 0.0}


def test_rl_zoo3_run_folder_plays_plots_and_reports(in_process: Zoo, tmp_path: Path) -> None:
    env_id = "CartPole-v1"
    run = tmp_path / "logs" / "ppo_lstm" / f"{env_id}_1"
    params = run / env_id
    params.mkdir(parents=True)
    args = OrderedDict([("algo", "ppo_lstm"), ("env", env_id), ("seed", 0)])
    config = OrderedDict([("n_envs", 1), ("n_timesteps", 1000.0), ("policy", "MlpLstmPolicy"),
                          ("n_steps", 64), ("batch_size", 64),
                          ("policy_kwargs", "dict(lstm_hidden_size=16)")])  # fmt: skip
    (params / "args.yml").write_text(yaml.dump(args))  # with rl_zoo3's OrderedDict tag
    (params / "config.yml").write_text(yaml.dump(config))
    model = RecurrentPPO("MlpLstmPolicy", env_id, n_steps=64, batch_size=64, seed=0,
                         policy_kwargs={"lstm_hidden_size": 16}, device="cpu")  # fmt: skip
    model.learn(128)
    model.save(run / f"{env_id}.zip")
    np.savez(run / "evaluations.npz", timesteps=np.array([64, 128]),
             results=np.array([[9.0, 11.0], [20.0, 30.0]]), ep_lengths=np.array([[9, 11], [20, 30]]))  # fmt: skip
    header = json.dumps({"t_start": 0.0, "env_id": env_id})
    (run / "0.monitor.csv").write_text(f"#{header}\nr,l,t\n12.0,12,0.1\n20.0,20,0.2\n")

    played = in_process("enjoy", "--algo", "ppo_lstm", "--env", env_id, "--no-render",
                        "--episodes", "2")  # fmt: skip
    assert played.returncode == 0, played.stderr
    assert "2 games: mean" in played.stdout
    plotted = in_process("plot", str(run), "-o", "curves.png", "--window", "1")
    assert plotted.returncode == 0, plotted.stderr
    reported = in_process("report")
    assert reported.returncode == 0, reported.stderr
    row = next(line for line in reported.stdout.splitlines() if f"ppo_lstm/{env_id}_1" in line)
    assert "25.0 ± 5.0 (2 games, evaluation at step 128)" in row and " | 128 | " in row
