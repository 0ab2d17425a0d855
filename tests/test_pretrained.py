"""Shipped agents: packaged from a benchmark cell, played by enjoy and listed by report."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import zoo.results.pretrained
from tests.conftest import run_in_process
from zoo.algorithms.model_loading import load_model
from zoo.results.pretrained import main as package_main

Zoo = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of shipped agents holding one a2c CartPole agent, packaged from a real cell."""
    root = tmp_path_factory.mktemp("pretrained")
    trained = run_in_process(["benchmark", "--algos", "a2c", "--envs", "CartPole-v1", "--seeds",
                              "5", "-n", "800", "--set", "eval_freq=400", "--set",
                              "eval_episodes=2", "--eval-games", "3", "--quiet"], root)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    cell = root / "logs" / "benchmark" / "a2c_CartPole-v1" / "a2c_CartPole-v1_seed5"
    assert package_main([str(cell), "--into", str(root / "agents")]) == 0
    return root / "agents"


@pytest.fixture
def using(shipped: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(zoo.results.pretrained, "pretrained_root", lambda: shipped)
    return shipped


def test_a_packaged_agent_has_its_card_and_small_weights(shipped: Path) -> None:
    agent = shipped / "a2c-CartPole"
    card = yaml.safe_load((agent / "card.yml").read_text())
    assert card["algo"] == "a2c" and card["steps"] == 800 and card["seed"] == 5
    assert card["evaluation"]["seeds"] == [0, 1, 2]
    assert len(card["evaluation"]["sampled"]["scores"]) == 3
    assert card["reproduce"].startswith("zoo benchmark --algos a2c --envs CartPole-v1 --seeds 5")
    assert card["settings"]["n_envs"] == 8 and card["trained_on"]["cores"]
    model = load_model(agent / "final_model.zip", device="cpu")
    assert model.policy.optimizer.state_dict()["state"] == {}  # weights only, no statistics
    assert all(p.dtype.is_floating_point and p.element_size() == 4
               for p in model.policy.parameters())  # fmt: skip


def test_enjoy_plays_a_shipped_agent_by_name_and_when_no_run_exists(
    using: Path, in_process: Zoo
) -> None:
    named = in_process("enjoy", "--pretrained", "a2c-cartpole", "--no-render", "--episodes", "2")
    assert named.returncode == 0, named.stderr
    assert named.stdout.startswith("Playing the shipped agent a2c-CartPole (zoo's own 800-step")
    assert "2 games: mean" in named.stdout
    fallback = in_process("enjoy", "--algo", "a2c", "--env", "CartPole-v1", "--no-render",
                          "--episodes", "2")  # fmt: skip
    assert fallback.returncode == 0, fallback.stderr
    assert "No a2c run of CartPole-v1 in logs: playing the shipped agent a2c-CartPole" in (
        fallback.stdout
    )
    # the same seed, the same games
    assert named.stdout.splitlines()[1:] == fallback.stdout.splitlines()[1:]
    unknown = in_process("enjoy", "--pretrained", "dqn-Pong", "--no-render")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "zoo: error: --pretrained dqn-Pong: no such shipped agent; shipped: a2c-CartPole"
    )
    mixed = in_process("enjoy", "--pretrained", "a2c-CartPole", "--model", "best")
    assert mixed.returncode == 2 and "leave out --run, --exp-id, --model" in mixed.stderr
    nothing = in_process("enjoy", "--algo", "dqn", "--env", "CartPole-v1", "--no-render")
    assert nothing.returncode == 2 and "no dqn run of CartPole-v1" in nothing.stderr


def test_report_lists_the_shipped_agent_beside_the_papers(using: Path, in_process: Zoo) -> None:
    Path("logs").mkdir()
    result = in_process("report")
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if "shipped: a2c-CartPole" in line]
    assert (
        "| a2c | CartPole | 800 |" in row and "(3 games, shipped agent, seeds 0-2, sampled" in row
    )


@pytest.mark.slow
def test_an_unfinished_cell_ships_its_newest_checkpoint_labelled_as_such(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    in_process: Zoo,
) -> None:
    grid = ["benchmark", "--algos", "a2c", "--envs", "CartPole-v1", "--seeds", "3", "-n", "40000",
            "--set", "save_freq=800", "--set", "eval_freq=0", "--quiet"]  # fmt: skip
    cell = tmp_path / "logs" / "benchmark" / "a2c_CartPole-v1" / "a2c_CartPole-v1_seed3"
    process = subprocess.Popen([sys.executable, "-m", "zoo", *grid], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (cell / "checkpoints" / f"step_{1600:012d}" / "manifest.json").is_file():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C: a checkpoint at the step boundary
    assert process.wait(timeout=60) == 130
    info = yaml.safe_load((cell / "run.yml").read_text())
    assert info["status"] == "interrupted" and 1600 <= info["timesteps"] < 40000
    agents = tmp_path / "agents"

    assert package_main([str(cell), "--into", str(agents)]) == 2  # not without --unfinished
    assert "add --unfinished to package its newest checkpoint" in capsys.readouterr().out
    assert not agents.exists()
    assert package_main([str(cell), "--into", str(agents), "--unfinished",
                         "--eval-games", "0"]) == 2  # fmt: skip
    assert capsys.readouterr().out.strip() == "error: --eval-games 0: give at least 1 game"

    assert package_main([str(cell), "--into", str(agents), "--unfinished",
                         "--eval-games", "2"]) == 0  # fmt: skip
    card = yaml.safe_load((agents / "a2c-CartPole" / "card.yml").read_text())
    newest = max(int(path.name.removeprefix("step_")) for path in (cell / "checkpoints").iterdir())
    assert card["steps"] == newest and card["planned_steps"] == 40000
    assert f"trained {newest:,} of the run's 40,000 steps" in card["unfinished"]
    assert card["model"] == f"the newest checkpoint of the run (step_{newest:012d})"
    assert card["evaluation"]["seeds"] == [0, 1]
    assert set(card["evaluation"]) == {"games", "seeds", "sampled", "greedy"}
    assert all(len(card["evaluation"][mode]["scores"]) == 2 for mode in ("sampled", "greedy"))
    shipped = yaml.safe_load((agents / "a2c-CartPole" / "run.yml").read_text())
    assert shipped["timesteps"] == shipped["total_timesteps"] == newest
    monkeypatch.setattr(zoo.results.pretrained, "pretrained_root", lambda: agents)
    played = in_process("enjoy", "--pretrained", "a2c-CartPole", "--no-render", "--episodes", "1")
    assert played.returncode == 0, played.stderr
    assert f"(zoo's own run, stopped at step {newest:,} of 40,000, " in played.stdout


# The shipped A2C Breakout agent scored 303.7 ± 83.0 (sampled actions) over its card's 30 whole
# games (seeds 0-29); random play scores 1.7. A mean of 3 games then spreads by about
# 83.0 / sqrt(3) = 47.9, so 205 is the 30-game mean less two of those, rounded down
# to a multiple of 5: a working agent stays above it even where another CPU's rounding changes
# which actions are drawn (seeds 0-2 gave 359, 136 and 264 here, mean 253), and an agent
# that does not play (a broken load, random weights) falls far below it.
SHIPPED_BREAKOUT_THRESHOLD = 205.0


@pytest.mark.slow
def test_the_shipped_breakout_agent_plays_well_on_a_fresh_install() -> None:
    from zoo.results.benchmark import play_model
    from zoo.results.enjoy import run_config
    from zoo.results.pretrained import read_card, shipped_agent

    agent = shipped_agent("a2c-Breakout")  # inside the package: nothing is downloaded
    card = read_card(agent)
    assert card["algo"] == "a2c" and card["env"] == "BreakoutNoFrameskip-v4"
    assert len(card["evaluation"]["sampled"]["scores"]) == 30
    config = run_config(agent)
    assert config.evaluation.sampled and config.evaluation.max_frames == 108_000
    assert config.evaluation.epsilon == 0.0  # the card's games: no random actions
    scores, _ = play_model(
        agent.final_model, config, seeds=[0, 1, 2], sampled=True, epsilon=config.evaluation.epsilon
    )
    assert sum(scores) / 3 > SHIPPED_BREAKOUT_THRESHOLD, scores


# drq_eps-Breakout's card: 10.65 +- 4.03 over 100 games; mean - 2 x std / sqrt(3), rounded down.
SHIPPED_DQN_BREAKOUT_THRESHOLD = 6.0


@pytest.mark.slow
def test_the_shipped_dqn_agent_plays_as_its_card_says_on_a_fresh_install() -> None:
    from zoo.results.benchmark import play_model
    from zoo.results.enjoy import run_config
    from zoo.results.pretrained import read_card, shipped_agent

    agent = shipped_agent("drq_eps-Breakout")
    card = read_card(agent)
    assert card["algo"] == "dqn" and card["steps"] == 100_000
    assert len(card["evaluation"]["greedy"]["scores"]) == 100
    config = run_config(agent)
    assert config.evaluation.epsilon == 0.001  # the Atari-100k protocol's
    scores, _ = play_model(
        agent.final_model, config, seeds=[0, 1, 2], sampled=False, epsilon=config.evaluation.epsilon
    )
    assert scores == card["evaluation"]["greedy"]["scores"][:3]  # the card's own games
    assert sum(scores) / 3 > SHIPPED_DQN_BREAKOUT_THRESHOLD, scores
