"""Model zips load without unpickling: a zip's pickled entries are rebuilt by zoo, so a
crafted zip runs no code, and every zip zoo, rl_zoo3 or SB3 saves still loads the same."""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import QRDQN
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv

from zoo.algorithms.model_loading import NotRestoredSchedule, algorithm_of, load_model
from zoo.core.errors import UserError
from zoo.results.pretrained import shipped_agents


class WritesAFile:
    """Unpickling it creates `path`: what a crafted zip could do with any code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def model_zip_bytes() -> bytes:
    buffer = io.BytesIO()
    A2C("MlpPolicy", "CartPole-v1", device="cpu").save(buffer)
    return buffer.getvalue()


def with_entry(zip_bytes: bytes, key: str, serialized: str) -> bytes:
    """The zip with `data[key]` replaced by a pickled entry holding `serialized`."""
    source = zipfile.ZipFile(io.BytesIO(zip_bytes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "data":
                data = json.loads(content)
                data[key] = {":type:": "<class 'object'>", ":serialized:": serialized}
                content = json.dumps(data).encode()
            target.writestr(name, content)
    return out.getvalue()


def crafted_zip(zip_bytes: bytes, key: str, marker: Path) -> bytes:
    return with_entry(zip_bytes, key, base64.b64encode(pickle.dumps(WritesAFile(marker))).decode())


def damaged_zip(zip_bytes: bytes) -> bytes:
    return with_entry(zip_bytes, "policy_class", base64.b64encode(b"\x80\x05\x95garbage").decode())


def test_a_crafted_zip_runs_no_code(tmp_path: Path, in_process: Callable[..., Any]) -> None:
    marker = tmp_path / "written_by_the_zip"
    evil = tmp_path / "evil.zip"
    evil.write_bytes(crafted_zip(model_zip_bytes(), "policy_class", marker))
    with pytest.raises(Exception):  # noqa: B017  (SB3 alone runs it: the zip is live)
        A2C.load(evil, device="cpu")
    assert marker.exists()
    marker.unlink()

    result = in_process("enjoy", "--model", str(evil), "--env", "CartPole-v1", "--no-render")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "its policy_class needs code that zoo does not run" in result.stderr
    for action in (algorithm_of, load_model):
        with pytest.raises(UserError, match="needs code that zoo does not run"):
            action(evil)
    # In an entry SB3 recreates anyway, it is never read: the model plays.
    evil.write_bytes(crafted_zip(model_zip_bytes(), "_last_obs", marker))
    result = in_process("enjoy", "--model", str(evil), "--env", "CartPole-v1", "--no-render",
                        "--episodes", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def test_weights_that_would_run_code_are_refused(
    tmp_path: Path, in_process: Callable[..., Any]
) -> None:
    marker = tmp_path / "written_by_the_weights"
    weights = io.BytesIO()
    th.save({"weight": WritesAFile(marker)}, weights)
    source = zipfile.ZipFile(io.BytesIO(model_zip_bytes()))
    evil = tmp_path / "evil_weights.zip"
    with zipfile.ZipFile(evil, "w") as target:
        for name in source.namelist():
            target.writestr(name, weights.getvalue() if name == "policy.pth" else source.read(name))
    for args in (["enjoy", "--model", str(evil), "--env", "CartPole-v1", "--no-render"],
                 ["train", "--algo", "a2c", "--env", "CartPole-v1", "--init-from", str(evil),
                  "--log-dir", str(tmp_path / "logs")]):  # fmt: skip
        result = in_process(*args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "weights hold more than tensors" in result.stderr
    assert not marker.exists() and not (tmp_path / "logs").exists()


def test_a_damaged_zip_is_one_line(tmp_path: Path, in_process: Callable[..., Any]) -> None:
    for name, content in [
        ("damaged.zip", damaged_zip(model_zip_bytes())),
        ("truncated.zip", model_zip_bytes()[:2000]),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        result = in_process("enjoy", "--model", str(path), "--env", "CartPole-v1", "--no-render")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr and str(path) in result.stderr


def _linear(initial: float) -> Callable[[float], float]:
    def schedule(progress_remaining: float) -> float:  # as rl_zoo3's lin_ values are saved
        return progress_remaining * initial

    return schedule


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    if isinstance(a, gym.Space):
        return bool(a == b)  # bounds, shape and dtype; not the sampling generator
    if type(a) is type(b) and hasattr(a, "__dict__") and not isinstance(a, type):
        return _same(vars(a), vars(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


# Entries SB3 makes anew before any use (zoo gives None); function schedules: see below.
RECREATED = {"_last_obs", "_last_original_obs", "_last_episode_starts", "lr_schedule",
             "exploration_schedule"}  # fmt: skip


def _assert_loads_as_sb3_does(path: Path) -> BaseAlgorithm:
    algorithm = algorithm_of(path)
    safe, plain = load_model(path, device="cpu"), algorithm.load(path, device="cpu")
    data = json.loads(zipfile.ZipFile(path).read("data"))
    differ = [key for key in data if not _same(getattr(safe, key), getattr(plain, key))]
    assert set(differ) <= RECREATED | {"learning_rate", "clip_range"}, differ
    for key in set(differ) & {"learning_rate", "clip_range"}:  # saved as functions
        value = getattr(safe, key)
        assert isinstance(getattr(value, "value_schedule", value), NotRestoredSchedule)
    for safe_part, plain_part in [(safe.policy.state_dict(), plain.policy.state_dict())]:
        assert safe_part.keys() == plain_part.keys()
        assert all(th.equal(safe_part[k], plain_part[k]) for k in safe_part)
    assert (
        safe.policy.optimizer.state_dict()["param_groups"]
        == (plain.policy.optimizer.state_dict()["param_groups"])
    )
    return safe


def test_shipped_agents_load_as_sb3_loads_them() -> None:
    agents = shipped_agents()
    assert agents
    for folder in agents.values():
        _assert_loads_as_sb3_does(folder / "final_model.zip")


def test_zips_saved_under_the_former_module_paths_still_load() -> None:
    """The shipped DQN zip was saved when zoo's modules were flat (zoo.q_networks,
    zoo.frame_buffer, zoo.schedules): SB3's loader and zoo's both rebuild its classes."""
    path = shipped_agents()["drq_eps-Breakout"] / "final_model.zip"
    data = zipfile.ZipFile(path).read("data").decode()
    pickled = b"".join(
        base64.b64decode(entry[":serialized:"])
        for entry in json.loads(data).values()
        if isinstance(entry, dict) and ":serialized:" in entry
    )
    assert b"zoo.q_networks" in pickled and b"zoo.frame_buffer" in pickled
    model = _assert_loads_as_sb3_does(path)
    assert type(model.policy).__module__ == "zoo.algorithms.q_networks"
    assert model.replay_buffer_class.__module__ == "zoo.replay.frame_buffer"


def test_rl_zoo3_and_sb3_zips_load_as_sb3_loads_them(tmp_path: Path) -> None:
    models: dict[str, BaseAlgorithm] = {
        "dqn": DQN("MlpPolicy", "CartPole-v1", learning_starts=10, device="cpu"),
        "qrdqn": QRDQN(
            "MlpPolicy",
            "CartPole-v1",
            learning_starts=10,
            device="cpu",
            policy_kwargs={"n_quantiles": 20},
        ),
        "a2c": A2C(
            "MlpPolicy",
            "CartPole-v1",
            device="cpu",
            policy_kwargs={"net_arch": [32], "activation_fn": th.nn.Tanh},
        ),
        "ppo": PPO(
            "MlpPolicy",
            "CartPole-v1",
            n_steps=32,
            batch_size=32,
            device="cpu",
            learning_rate=_linear(3e-4),
            clip_range=_linear(0.2),
        ),
    }
    for name, model in models.items():
        model.learn(100)  # recent games and the last observation are saved too
        model.save(tmp_path / f"{name}.zip")
        loaded = _assert_loads_as_sb3_does(tmp_path / f"{name}.zip")
        assert type(loaded).__name__.lower().endswith(name)
    ppo = load_model(tmp_path / "ppo.zip", device="cpu")
    ppo.set_env(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    with pytest.raises(UserError, match="its learning_rate was saved as a function"):
        ppo.learn(64)


def test_zoo_zips_of_every_algorithm_load_as_sb3_loads_them(tmp_path: Path) -> None:
    from zoo.config.config import build_config
    from zoo.envs.stack import make_vec_env_for
    from zoo.training.model_setup import build_model

    for algo in ("dqn", "qrdqn", "a2c", "ppo"):
        config = build_config(algo, "CartPole-v1")
        env = make_vec_env_for(config.env, config.env_settings(), 0)
        model = build_model(config, env, "cpu")
        model.learn(300)
        model.save(tmp_path / f"{algo}.zip")
        env.close()
        loaded = _assert_loads_as_sb3_does(tmp_path / f"{algo}.zip")
        assert loaded.trained_on == "CartPole-v1"  # type: ignore[attr-defined]
        assert loaded.ep_info_buffer == model.ep_info_buffer  # kept for a resume's logs
