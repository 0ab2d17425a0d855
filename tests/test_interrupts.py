"""Ctrl-C or SIGTERM while training stops at the end of the rollout; a second one quits at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from stable_baselines3.common.callbacks import BaseCallback

from tests.conftest import REPO
from zoo.config.config import build_config
from zoo.core.interrupts import own_stop_signals, stop_requests
from zoo.runs.checkpoints import newest_checkpoint
from zoo.runs.evaluation import EVALUATIONS_FILE
from zoo.runs.folders import start_run
from zoo.training.train import TrainOptions, train


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler, whatever the shell that started pytest left."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_sets_the_request_instead_of_raising(python_ctrl_c: None) -> None:
    messages: list[str] = []
    with stop_requests(messages.append) as request:
        _press_ctrl_c()
        assert request.requested
    assert messages == [
        "zoo: Ctrl-C: stopping at the end of this rollout (Ctrl-C again quits at once)"
    ]
    # The run is on its way out: a further Ctrl-C must still not raise mid-save.
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with stop_requests(messages.append) as request:
        pass
    assert not request.requested
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_second_ctrl_c_quits_at_once() -> None:
    script = (
        "import os, signal; from zoo.core.interrupts import own_stop_signals, stop_requests\n"
        "with stop_requests(print):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    print('not reached')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 130
    assert "quitting without a new checkpoint" in result.stdout
    assert "not reached" not in result.stdout and "Traceback" not in result.stderr


class CtrlCAt(BaseCallback):
    """Presses Ctrl-C once the run reaches `step`."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        if self.num_timesteps == self.step:
            _press_ctrl_c()
        return True


@pytest.mark.parametrize("algo", ["dqn", "a2c"])
def test_training_stops_at_the_step_of_the_ctrl_c_and_saves(
    algo: str, tmp_path: Path, python_ctrl_c: None
) -> None:
    config = build_config(
        algo, "CartPole-v1", overrides=["n_timesteps=5000", "seed=0", "n_envs=1", "eval_freq=0"]
    )
    run = start_run(tmp_path, config, "cpu", ["train"])
    warnings: list[str] = []
    result = train(
        config,
        run,
        TrainOptions(device="cpu", warn=warnings.append),
        extra_callbacks=[CtrlCAt(700)],
    )
    # The end of the rollout the Ctrl-C came in: a step an uninterrupted run also stops at
    # (DQN on CartPole collects 256 steps per rollout, A2C 5), never a step later.
    stop = {"dqn": 768, "a2c": 700}[algo]
    assert result.interrupted and result.timesteps == stop
    assert any(f"Interrupted at step {stop}" in message for message in warnings)
    info = yaml.safe_load((run.path / "run.yml").read_text())
    assert info["status"] == "interrupted" and info["timesteps"] == stop
    checkpoint, _ = newest_checkpoint(run.path / "checkpoints")
    assert checkpoint is not None and checkpoint.step == stop


def test_ctrl_c_during_an_evaluation_abandons_its_games(
    tmp_path: Path, python_ctrl_c: None
) -> None:
    config = build_config(
        "dqn",
        "CartPole-v1",
        overrides=["n_timesteps=5000", "seed=0", "eval_freq=300", "eval_episodes=10000"],
    )
    run = start_run(tmp_path, config, "cpu", ["train"])

    class CtrlCInEvaluation(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == 299:  # the evaluation runs at the next step
                signal.signal(signal.SIGALRM, lambda *_: _press_ctrl_c())
                signal.setitimer(signal.ITIMER_REAL, 0.5)  # half a second into its games
            return True

    result = train(
        config,
        run,
        TrainOptions(device="cpu", warn=lambda _: None),
        extra_callbacks=[CtrlCInEvaluation()],
    )
    # The evaluation at step 300 is abandoned; training stops where that rollout ends
    # (DQN on CartPole: 256 steps per rollout), with no evaluation in between.
    assert result.interrupted and result.timesteps == 512
    log = run.path / EVALUATIONS_FILE
    assert not log.exists() or len(log.read_text().splitlines()) <= 1  # no row of it


def test_zoo_owns_the_stop_signals_whatever_it_inherited(python_ctrl_c: None) -> None:
    """A job a script starts in the background (`zoo ... &`) inherits SIGINT ignored; the
    stop request must be set up all the same (the slow bash test in test_reliability)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        own_stop_signals()
        with stop_requests(lambda _: None) as request:
            os.kill(os.getpid(), signal.SIGTERM)
            assert request.signum == signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
