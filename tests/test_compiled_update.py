"""`compile:` the TD update as one torch.compile'd function: the same parameters as the eager
update, no recompilation once warm, exact resume, and a one-line refusal where compiling
fails."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from torch._dynamo.utils import counters

from zoo.algorithms.compiled_update import wants_compiling
from zoo.algorithms.model_loading import load_model
from zoo.algorithms.noisy import set_noise
from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.training.model_setup import build_model

UPDATES = 50
WARM_UP = 3  # updates after which every variant of the step has been compiled

# A short Breakout DQN with every piece the update composes: Double + Dueling, n-step,
# the frame buffer, Adam with a learning rate that changes at every update, and a target
# copied every other update (so both the online-as-target shortcut and the target network
# are taken).
SETTINGS = [
    "seed=0",
    "buffer_size=400",
    "learning_starts=100",
    "network=dqn2013",
    "target_update_interval=2",
    "max_grad_norm=10",
    "learning_rate={type: linear, initial: 1.0e-3, final: 1.0e-4, steps: 400}",
]


def _model(*overrides: str, algo: str = "dqn") -> Any:
    preset = "drq_eps" if algo == "dqn" else None
    config = build_config(algo, "Breakout", preset=preset, overrides=[*SETTINGS, *overrides])
    env = make_vec_env_for(config.env, config.env_settings(), 0)
    return build_model(config, env, "cpu")


def _graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


def _parameters(model: Any) -> list[th.Tensor]:
    return [parameter.detach().clone() for parameter in model.policy.parameters()]


@pytest.fixture(scope="module", params=["dqn", "dqn prioritized", "qrdqn", "c51"])
def updated_pair(request: pytest.FixtureRequest) -> dict[str, Any]:
    """An eager and a compiled model, built alike, each fed the same 50 batches (the same
    replay contents, the same draws of sampling and augmentation): the drq_eps DQN with
    uniform or prioritized replay, a Double + Dueling QR-DQN and a Double + Dueling C51.
    (With prioritized replay, compiled and eager C51 drift further apart, measured up to
    1.7e-4 on a weight that moved 2.8e-2 in the 50 updates: the roundings reach its KL
    priorities, hence the importance weights and the draws. The noisy test below compiles it.)"""
    algo = request.param.split()[0]
    extra = ["prioritized_replay=true"] if "prioritized" in request.param else []
    if algo in ("qrdqn", "c51"):
        extra += ["double_q=true", "dueling=true", "n_steps=3", "replay_buffer=frames"]
    eager = _model("compile=false", *extra, algo=algo)
    fast = _model("compile=true", *extra, algo=algo)
    assert not eager.compiles_update and fast.compiles_update
    assert all(th.equal(a, b) for a, b in zip(_parameters(eager), _parameters(fast), strict=True))
    untrained = _parameters(eager)
    eager.learn(100)  # fills the buffer; learning starts at 100
    fast.replay_buffer = copy.deepcopy(eager.replay_buffer)
    fast.num_timesteps = eager.num_timesteps
    fast.set_logger(eager.logger)
    graphs: list[int] = []
    for update in range(UPDATES):
        if update == WARM_UP:
            graphs.append(_graphs())
        for model in (eager, fast):
            np.random.seed(update)
            th.manual_seed(update)
            model.train(gradient_steps=1, batch_size=32)
            model.num_timesteps += 1  # the learning-rate schedule moves on
            model._on_step()  # SB3's target copy every target_update_interval calls
    graphs.append(_graphs())
    return {"eager": eager, "fast": fast, "graphs": graphs, "untrained": untrained}


@pytest.mark.slow
def test_compiled_and_eager_updates_give_the_same_parameters(updated_pair: dict[str, Any]) -> None:
    eager, fast = updated_pair["eager"], updated_pair["fast"]
    assert eager._n_updates == fast._n_updates == UPDATES
    moved = [
        not th.equal(before, after)
        for before, after in zip(updated_pair["untrained"], _parameters(eager), strict=True)
    ]
    assert all(moved)  # the 50 updates trained every parameter
    for mine, theirs in zip(_parameters(eager), _parameters(fast), strict=True):
        th.testing.assert_close(theirs, mine, rtol=1e-4, atol=1e-5)
    lr = fast.policy.optimizer.param_groups[0]["lr"]
    assert float(lr) == pytest.approx(eager.policy.optimizer.param_groups[0]["lr"])


@pytest.mark.slow
def test_no_recompilation_once_warm(updated_pair: dict[str, Any]) -> None:
    after_warm_up, at_end = updated_pair["graphs"]
    assert after_warm_up > 0
    assert at_end == after_warm_up  # a new learning rate, batch or target: no new graph


@pytest.mark.slow
def test_noisy_nets_draw_their_noise_inside_the_compiled_update() -> None:
    """Noise drawn by compiled code differs from eager draws, so no comparison of numbers:
    the compiled noisy C51 trains (fresh noise at every update) with no recompilation, and
    one batch's compiled loss differs between two calls (equal with the noise off)."""
    model = _model(
        "compile=true", "noisy=true", "double_q=true", "dueling=true", "n_steps=3",
        "replay_buffer=frames", "prioritized_replay=true", algo="c51",
    )  # fmt: skip
    assert model.compiles_update
    untrained = _parameters(model)
    model.learn(100)
    graphs = []
    for update in range(20):
        if update == WARM_UP:
            graphs.append(_graphs())
        model.train(gradient_steps=1, batch_size=32)
        model._on_step()
    graphs.append(_graphs())
    assert graphs[0] > 0 and graphs[1] == graphs[0]
    trained = _parameters(model)
    assert all(th.isfinite(p).all() for p in trained)
    assert all(not th.equal(a, b) for a, b in zip(untrained, trained, strict=True))
    # The compiled loss of one batch, twice, no step between: fresh noise gives two values
    # (a compiled graph that froze its random draws would give one).
    assert model._compiled_parts is not None
    compiled_loss = model._compiled_parts[0]
    batch = model.replay_buffer.sample(32, env=None)
    first, second = (compiled_loss(batch, None)[0].item() for _ in range(2))
    assert first != second
    set_noise(model.policy, False)  # mean weights: no noise, the same value twice
    assert compiled_loss(batch, None)[0].item() == compiled_loss(batch, None)[0].item()


def test_auto_compiles_on_cuda_and_not_on_the_cpu() -> None:
    assert not wants_compiling("auto", th.device("cpu"))
    assert wants_compiling("auto", th.device("cuda"))
    assert wants_compiling(True, th.device("cpu")) and not wants_compiling(False, th.device("cuda"))
    assert not _model().compiles_update  # the default, auto, on this CPU: no probe, no compile


SHORT_RUN = [
    "train", "--algo", "dqn", "--env", "Breakout", "--preset", "drq_eps", "--seed", "3",
    "--set", "buffer_size=400", "--set", "learning_starts=100", "--set", "network=dqn2013",
    "--set", "eval_freq=0", "--set", "save_freq=100", "--set", "save_replay_buffer=true",
    "--set", "compile=true", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_a_compiled_run_saves_loads_and_resumes_exactly(
    in_process: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """Two resumes of one checkpoint (replay buffer, RNG states, optimizer with its
    learning-rate tensors) compile again and end bit for bit alike: nothing of the compiled
    update lives outside what a checkpoint saves."""
    first = in_process(*SHORT_RUN, "-n", "200")
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "logs" / "dqn" / "BreakoutNoFrameskip-v4_1"
    twin_dir = tmp_path / "twin"
    shutil.copytree(run_dir, twin_dir)
    halfway_file = tmp_path / "halfway.zip"
    shutil.copy(run_dir / "final_model.zip", halfway_file)
    for folder in (run_dir, twin_dir):
        resumed = in_process("train", "--resume", str(folder), "-n", "300", "--quiet")
        assert resumed.returncode == 0, resumed.stderr
        assert "has no replay buffer" not in resumed.stderr
    models = [load_model(d / "final_model.zip", device="cpu") for d in (run_dir, twin_dir)]
    assert [m.num_timesteps for m in models] == [300, 300]
    assert [m.compile for m in models] == [True, True]
    # Loaded, nothing is compiled (or probed) until an update: watching needs no compiler.
    assert [m.compiles_update for m in models] == [None, None]
    assert models[0]._n_updates == models[1]._n_updates == 200
    for mine, theirs in zip(_parameters(models[0]), _parameters(models[1]), strict=True):
        assert th.equal(mine, theirs)
    halfway = load_model(halfway_file, device="cpu")
    assert not all(
        th.equal(before, after)
        for before, after in zip(_parameters(halfway), _parameters(models[0]), strict=True)
    )  # the resumed half trained


@pytest.mark.slow
def test_compile_true_where_compiling_fails_is_one_line(tmp_path: Path) -> None:
    """No C++ compiler for torch.compile's CPU code (and no cached kernels to fall back on):
    one line, exit code 2, no run folder."""
    environment = {
        **os.environ,
        "CXX": str(tmp_path / "no-such-compiler"),
        "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "zoo", *SHORT_RUN, "-n", "200"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "compile: true" in lines[0] and "compile: false" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs" / "dqn").exists() or not any(
        (tmp_path / "logs" / "dqn").iterdir()
    )
