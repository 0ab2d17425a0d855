"""rl-baselines3-zoo run folders, bare model zips and --gym-packages.

The run folder is made here as rl_zoo3 lays it out: a real A2C model trained in-process on
CartPole for a few hundred steps and saved under rl_zoo3's names, a real evaluations.npz and
monitor file, and args.yml / config.yml with the OrderedDict tag rl_zoo3's YAML dump writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3 import A2C

from zoo.config.config import build_config
from zoo.core.errors import UserError
from zoo.runs.folders import find_run, open_run, start_run

Zoo = Callable[..., subprocess.CompletedProcess[str]]
ENV = "CartPole-v1"


def make_rl_zoo3_run(
    log_dir: Path, number: int, with_model: bool = True, with_best: bool = True
) -> Path:
    run = log_dir / "a2c" / f"{ENV}_{number}"
    params = run / ENV
    params.mkdir(parents=True)
    args = OrderedDict([("algo", "a2c"), ("env", ENV), ("gym_packages", []), ("seed", 0)])
    config = OrderedDict(
        [("ent_coef", 0.0), ("n_envs", 8), ("n_timesteps", 500000.0), ("policy", "MlpPolicy"),
         ("policy_kwargs", "dict(net_arch=[32], activation_fn=nn.Tanh)")]
    )  # fmt: skip
    # yaml.dump, as rl_zoo3 writes them (the OrderedDict tag); zoo reads them safely
    (params / "args.yml").write_text(yaml.dump(args))
    (params / "config.yml").write_text(yaml.dump(config))
    if with_model:
        model = A2C("MlpPolicy", ENV, policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
        model.learn(200)
        model.save(run / f"{ENV}.zip")
        if with_best:
            model.save(run / "best_model.zip")
    np.savez(
        run / "evaluations.npz",
        timesteps=np.array([100, 200]),
        results=np.array([[9.0, 11.0], [20.0, 30.0]]),
        ep_lengths=np.array([[9, 11], [20, 30]]),
    )
    header = json.dumps({"t_start": 0.0, "env_id": ENV})
    games = "".join(f"{10.0 + i},{10 + i},{0.1 * i:.1f}\n" for i in range(12))
    (run / "0.monitor.csv").write_text(f"#{header}\nr,l,t\n{games}")
    return run


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log_dir = tmp_path_factory.mktemp("rlzoo") / "logs"
    make_rl_zoo3_run(log_dir, 1)
    make_rl_zoo3_run(log_dir, 2, with_model=False)  # newest, but nothing to play yet
    return log_dir


def test_run_folder_opens_with_its_config(logs: Path) -> None:
    run = open_run(logs / "a2c" / f"{ENV}_1")
    assert run.layout == "rl_zoo3"
    info = run.read_info()
    # the model's own count (200 steps), not config.yml's n_timesteps
    assert (info["algo"], info["env"], info["timesteps"]) == ("a2c", ENV, 200)
    config = build_config("a2c", ENV, hyperparams_file=run.config_file)
    assert config.hyperparams["policy_kwargs"] == {"net_arch": [32], "activation_fn": "tanh"}
    assert config.n_timesteps == 500000


def test_newest_playable_run_is_chosen_and_named(logs: Path, in_process: Zoo) -> None:
    said: list[str] = []
    from zoo.results.enjoy import choose_model

    run = find_run(logs, "a2c", ENV, None, usable=lambda r: choose_model(r, None), say=said.append)
    assert run.path.name == f"{ENV}_1"
    assert len(said) == 1 and f"{ENV}_1" in said[0] and f"{ENV}_2" in said[0]
    result = in_process("enjoy", "--algo", "a2c", "--env", ENV, "--log-dir", str(logs),
                        "--no-render", "--episodes", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Chose" in result.stdout and "1 games: mean" in result.stdout


def test_a_run_without_best_model_plays_its_final_model(tmp_path: Path, in_process: Zoo) -> None:
    # trained with --eval-freq -1, or stopped before its first evaluation
    run_dir = make_rl_zoo3_run(tmp_path / "logs", 1, with_best=False)
    from zoo.results.enjoy import choose_model

    chosen = choose_model(open_run(run_dir), None)
    assert (chosen.kind, chosen.path) == ("final", run_dir / f"{ENV}.zip")
    result = in_process("enjoy", "--run", str(run_dir), "--no-render", "--episodes", "1")
    assert result.returncode == 0, result.stderr


def test_any_model_zip_plays(logs: Path, in_process: Zoo, tmp_path: Path) -> None:
    in_run = logs / "a2c" / f"{ENV}_1" / f"{ENV}.zip"
    result = in_process("enjoy", "--model", str(in_run), "--no-render", "--episodes", "1")
    assert result.returncode == 0, result.stderr
    bare = tmp_path / "agent.zip"
    bare.write_bytes(in_run.read_bytes())
    result = in_process("enjoy", "--model", str(bare), "--env", ENV, "--no-render", "--episodes", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for args, message in [
        (["--model", str(bare)], "give --env too"),
        (["--model", str(tmp_path / "none.zip"), "--env", ENV], "no such model file"),
        (["--model", "newest"], "give best, final, checkpoint or a model FILE.zip"),
        (["--model", str(bare), "--env", ENV, "--algo", "dqn"], "is a model of a2c"),
    ]:
        result = in_process("enjoy", *args, "--no-render")
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_plot_and_report_read_the_run(logs: Path, in_process: Zoo, tmp_path: Path) -> None:
    output = tmp_path / "curves.png"
    result = in_process("plot", str(logs / "a2c" / f"{ENV}_1"), "-o", str(output), "--window", "1")
    assert result.returncode == 0, result.stderr
    assert "12 training games, 2 evaluations" in result.stdout and output.stat().st_size > 0
    result = in_process("report", "--log-dir", str(logs))
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if f"a2c/{ENV}_1" in line)
    assert "25.0 ± 5.0 (2 games, evaluation at step 200)" in row
    assert " | 200 | " in row  # the model's own 200 steps, not config.yml's 500,000


def test_steps_of_a_finished_run_without_a_readable_model_come_from_its_n(
    tmp_path: Path,
) -> None:
    run = make_rl_zoo3_run(tmp_path, 1)
    (run / f"{ENV}.zip").write_bytes(b"not a zip")  # the count is then what -n asked for
    args = OrderedDict([("algo", "a2c"), ("env", ENV), ("n_timesteps", 3000), ("seed", 0)])
    (run / ENV / "args.yml").write_text(yaml.dump(args))
    assert open_run(run).read_info()["timesteps"] == 3000


def test_resuming_an_rl_zoo3_run_is_refused_before_touching_it(logs: Path, in_process: Zoo) -> None:
    run = logs / "a2c" / f"{ENV}_1"
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    result = in_process("train", "--resume", str(run))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is an rl-baselines3-zoo run: zoo cannot resume it" in lines[0]
    assert f"zoo train --algo a2c --env {ENV} --init-from {run}" in lines[0]
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # no lock file either


# --- --gym-packages --------------------------------------------------------------------------

PACKAGE = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Pixels(gym.Env):
    """Move a dot left or right; reward for reaching the right edge."""

    def __init__(self, image: bool = True):
        self.image = image
        shape = (36, 36, 1) if image else (4,)
        self.observation_space = (spaces.Box(0, 255, shape, np.uint8) if image
                                  else spaces.Box(-1.0, 1.0, shape, np.float32))
        self.action_space = spaces.Discrete(2)

    def _obs(self):
        if self.image:
            frame = np.zeros((36, 36, 1), np.uint8)
            frame[18, self.x] = 255
            return frame
        return np.array([self.x / 35, 0, 0, 0], np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 18, 0
        return self._obs(), {}

    def step(self, action):
        self.x = int(np.clip(self.x + (1 if action else -1), 0, 35))
        self.t += 1
        done = self.x == 35
        return self._obs(), float(done), done, self.t >= 50, {}


class Steering(Pixels):
    """Continuous actions: a steering force."""

    def __init__(self):
        super().__init__(image=False)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)


gym.register("ZooTestPixels-v0", entry_point=Pixels, kwargs={"image": True})
gym.register("ZooTestVector-v0", entry_point=Pixels, kwargs={"image": False})
gym.register("ZooTestSteering-v0", entry_point=Steering)
gym.register("ZooTestMissing-v0", entry_point="zoo_no_such_simulator:Env")
'''


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "packages"
    (folder / "zoo_test_envs").mkdir(parents=True)
    (folder / "zoo_test_envs" / "__init__.py").write_text(PACKAGE)
    (folder / "zoo_broken_envs.py").write_text("raise RuntimeError('no simulator here')\n")
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_registered_envs_get_the_policy_their_observations_call_for(package: Path) -> None:
    from zoo.envs.gym_packages import import_gym_packages

    import_gym_packages(["zoo_test_envs"])
    assert build_config("a2c", "ZooTestPixels-v0").policy == "CnnPolicy"
    assert build_config("a2c", "ZooTestVector-v0").policy == "MlpPolicy"
    with pytest.raises(UserError, match="CnnPolicy needs image observations"):
        build_config("a2c", "ZooTestVector-v0", overrides=["policy=CnnPolicy"])


def test_packages_that_fail_to_import_are_one_line(package: Path, in_process: Zoo) -> None:
    for name, message in [
        ("zoo_no_such_package", "--gym-packages zoo_no_such_package: cannot import it (ModuleNotFoundError"),
        ("zoo_broken_envs", "--gym-packages zoo_broken_envs: cannot import it (RuntimeError: no simulator here)"),
    ]:  # fmt: skip
        result = in_process(
            "train", "--algo", "a2c", "--env", "ZooTestPixels-v0", "--gym-packages", name
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_envs_that_cannot_be_made_or_trained_are_one_line(
    package: Path, in_process: Zoo, tmp_path: Path
) -> None:
    train = ["train", "--gym-packages", "zoo_test_envs", "--log-dir", str(tmp_path / "logs")]
    missing = "cannot create env ZooTestMissing-v0: ModuleNotFoundError: No module named "
    A2C("MlpPolicy", ENV, device="cpu").save(tmp_path / "model.zip")
    for args, message in [
        ([*train, "--algo", "dqn", "--env", "ZooTestSteering-v0"],
         "dqn takes Discrete action spaces, but ZooTestSteering-v0 has Box(-1.0, 1.0, (1,), "
         "float32); train it with a2c or ppo"),
        ([*train, "--algo", "qrdqn", "--env", "ZooTestMissing-v0"], missing),
        ([*train, "--algo", "a2c", "--env", "ZooTestMissing-v0"], missing),
        (["enjoy", "--gym-packages", "zoo_test_envs", "--algo", "a2c", "--env",
          "ZooTestMissing-v0", "--model", str(tmp_path / "model.zip"), "--no-render"], missing),
    ]:  # fmt: skip
        result = in_process(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()


def test_action_spaces_are_those_sb3_takes() -> None:
    from gymnasium import spaces

    from zoo.algorithms.registry import ACTION_SPACES, ALGORITHMS

    class AnyActions(gym.Env[np.ndarray, Any]):
        observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

        def __init__(self, action_space: spaces.Space[Any]) -> None:
            self.action_space = action_space

    for algo, algorithm in ALGORITHMS.items():
        for space in (spaces.Box(-1, 1, (2,)), spaces.Discrete(3), spaces.MultiDiscrete([2, 3]),
                      spaces.MultiBinary(3)):  # fmt: skip
            try:
                policy = "MlpLstmPolicy" if algo == "ppo_lstm" else "MlpPolicy"
                algorithm(policy, AnyActions(space), _init_setup_model=False)
                takes = True
            except AssertionError:
                takes = False
            assert takes == isinstance(space, ACTION_SPACES[algo]), (algo, space)


def test_a_run_of_an_unregistered_env_suggests_gym_packages(
    in_process: Zoo, tmp_path: Path
) -> None:
    """A run of an env a package registers, resumed or plotted without the package."""
    run = start_run(tmp_path / "logs", build_config("a2c", "CartPole-v1"), "cpu", ["train"])
    run.run_file.write_text(run.run_file.read_text().replace("CartPole-v1", "ZooGone-v0"))
    for args in (["train", "--resume", str(run.path)],
                 ["plot", "--algo", "a2c", "--env", "ZooGone-v0"]):  # fmt: skip
        result = in_process(*args)
        assert result.returncode == 2, result.stderr
        assert "if a package registers it, add --gym-packages PKG" in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_and_enjoy_a_custom_image_env(package: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(package), os.environ.get("PYTHONPATH", "")]),
    }

    def zoo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip

    result = zoo("train", "--algo", "a2c", "--env", "ZooTestPixels-v0", "--gym-packages",
                 "zoo_test_envs", "-n", "160", "--n-envs", "2", "--vec-env", "subproc",
                 "--seed", "0", "--quiet", "--set", "eval_freq=0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "logs" / "a2c" / "ZooTestPixels-v0_1"
    assert "policy: CnnPolicy" in (run / "config.yml").read_text()
    result = zoo("enjoy", "--algo", "a2c", "--env", "ZooTestPixels-v0", "--gym-packages",
                 "zoo_test_envs", "--no-render", "--episodes", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 games: mean" in result.stdout
