"""Bad input, table-driven: one line on stderr, exit code 2, no traceback, nothing created
or changed.

In process and without training, so it runs in the fast tier.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tests.test_model_loading import crafted_zip, damaged_zip, model_zip_bytes
from zoo.cli import main
from zoo.envs import gym_packages

BOMB = "\n".join(
    [f"a0: &a0 [{', '.join(['x'] * 9)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
)

FILES = {
    "duplicate_keys.yml": "atari:\n  learning_rate: 1e-4\n  learning_rate: 1e-3\n",
    "duplicate_sections.yml": "atari:\n  batch_size: 32\natari:\n  batch_size: 64\n",
    "bomb.yml": BOMB + "\n",
    "complex_key.yml": "atari:\n  ? [a, b]\n  : 1\n",
    "binary.yml": b"\x00\xff\xfe\x80 not yaml",
    "rl_zoo3_ppo.yml": "CartPole-v1:\n  clip_range_vf: lin_0\n",  # SB3 refuses a clip of 0
    "cartpole.zip": (MODEL := model_zip_bytes()),
    # Unpickling its policy class would create ./pwned; the check below finds any new file.
    "crafted.zip": crafted_zip(MODEL, "policy_class", Path("pwned")),
    "damaged.zip": damaged_zip(MODEL),
    # --gym-packages zoo_fuzz_envs: a continuous-action env and one whose module is missing
    "zoo_fuzz_envs.py": (
        "import gymnasium as gym\n"
        "from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv\n"
        "gym.register('ZooFuzzSteering-v0', entry_point=Continuous_MountainCarEnv)\n"
        "gym.register('ZooFuzzMissing-v0', entry_point='zoo_no_such_simulator:Env')\n"
    ),
    "huge_steps.yml": "default:\n  n_timesteps: 1e30\n",
    "power.yml": "default:\n  buffer_size: 10**20\n",
    "equal_scores.md": "| game | Random | Human |\n|---|---|---|\n| Pong | -20.7 | -20.7 |\n",
}
ENVS = ["--gym-packages", "zoo_fuzz_envs"]

TRAIN = ["train", "--algo", "dqn", "--env", "CartPole-v1"]
BREAKOUT = ["train", "--algo", "dqn", "--env", "Breakout"]
CELLS = ["dqn_CartPole-v1_seed0", "dqn_CartPole-v1_seed1", "dqn_CartPole-v1_seed0"]
TUNE = ["tune", "--algo", "dqn", "--env", "CartPole-v1", "--trials", "1", "--trial-steps", "100"]

CASES: list[tuple[list[str], str]] = [
    (["train", "--algo", "dqn", "--env", "Nope"], "unknown env"),
    (["train", "--algo", "xyz", "--env", "Breakout"], "invalid choice"),
    # Refused by the memory admission before anything is allocated or created.
    ([*TRAIN, "--set", "buffer_size=1e12"], "the replay buffer needs 52,000.00 GB of memory"),
    ([*TRAIN, "--set", "buffer_size=1e30"], "buffer_size': must be at most 1e12"),
    ([*TRAIN, "--set", "policy_kwargs.optimizer_kwargs={lr: 5}"], "the step size is learning_rate"),
    ([*TRAIN, "--set", "policy_kwargs.optimizer_kwargs={betas: [2, 3]}"], "Invalid beta"),
    ([*TRAIN, "--set", "policy_kwargs.optimizer_kwargs={eps: -1}"], "Invalid epsilon"),
    ([*TRAIN, "--set", "batch_size=5000", "--set", "buffer_size=100"], "larger than the replay"),
    ([*BREAKOUT, "--set", "env_kwargs.repeat_action_probability=7"], "in [0, 1], got 7"),
    ([*BREAKOUT, "--set", "env_kwargs.max_num_frames_per_episode=-1"], "integer >= 0"),
    # Counts beyond any run (the int64 counters would overflow): one line, not a run forever.
    ([*TRAIN, "--set", "n_timesteps=1e30"], "n_timesteps': must be at most 1e12"),
    ([*TRAIN, "-n", "1" + "0" * 24], "must be at most 1e12 (more than any run needs), got 1e+24"),
    ([*TRAIN, "--hyperparams-file", "huge_steps.yml"], "n_timesteps': must be at most 1e12"),
    ([*TRAIN, "--hyperparams-file", "power.yml"], "expected an integer, got '10**20'"),
    ([*TRAIN, "--set", "buffer_size=10**20"], "expected an integer, got '10**20'"),
    ([*TRAIN, "--set", "learning_starts=1e30"], "learning_starts': must be at most 1e12"),
    ([*TRAIN, "--set", "gradient_steps=1e30"], "gradient_steps': must be at most 1e12"),
    ([*TRAIN, "--set", "train_freq=1e30"], "train_freq': must be at most 1e12"),
    ([*TRAIN, "--set", "train_freq=[1e30, episode]"], "train_freq': must be at most 1e12"),
    ([*TRAIN, "--set", "eval_freq=1e30"], "eval_freq': must be at most 1e12"),
    # Prioritized replay's exponents lie in [0, 1]; rl_zoo3 has no PER (SB3 has none), and
    # zoo's names are priority_alpha and priority_beta.
    ([*BREAKOUT, "--set", "priority_alpha=1.5"], "must be a finite number >= 0 and <= 1, got 1.5"),
    ([*BREAKOUT, "--set", "priority_alpha=-0.1"], ">= 0 and <= 1, got -0.1"),
    ([*BREAKOUT, "--set", "priority_beta=2"], "schedule values must be >= 0 and <= 1, got 2"),
    ([*BREAKOUT, "--set", "priority_beta=-0.5"], "schedule values must be >= 0 and <= 1"),
    (
        [*BREAKOUT, "--set", "priority_beta={type: linear, initial: 0.4, final: 1.5}"],
        "schedule values must be >= 0 and <= 1, got 1.5",
    ),
    (
        [*BREAKOUT, "--set", "prioritized_replay_alpha=0.6"],
        "unknown key 'prioritized_replay_alpha'",
    ),
    ([*TRAIN, "--log-dir", ""], "not an empty string"),
    ([*TRAIN, "--set", "learning_rate=abc"], "learning_rate"),
    ([*TRAIN, "--set", "learning_rate"], "expected KEY=VALUE"),
    ([*TRAIN, "--set", "learning_rate=.nan"], "must be a finite number, got nan"),
    (
        ["schedule", "--algo", "dqn", "--env", "Breakout", "--set", "learning_rate=.nan"],
        "must be a finite number, got nan",
    ),
    ([*TRAIN, "--set", "x" * 5000 + "=1"], "more characters"),
    ([*TRAIN, "--hyperparams-file", "duplicate_keys.yml"], "duplicate key 'learning_rate'"),
    ([*TRAIN, "--hyperparams-file", "duplicate_sections.yml"], "duplicate key 'atari'"),
    ([*TRAIN, "--hyperparams-file", "bomb.yml"], "aliases expand to"),
    ([*TRAIN, "--hyperparams-file", "complex_key.yml"], "a key must be a plain name"),
    ([*TRAIN, "--set", "policy_kwargs={[a, b]: 1}"], "a key must be a plain name"),
    ([*TRAIN, "--hyperparams-file", "binary.yml"], "not a UTF-8 text file"),
    ([*TRAIN, "--hyperparams-file", "/dev/zero"], "over 4 MiB"),
    ([*TRAIN, "--hyperparams-file", "missing.yml"], "not found"),
    (
        ["train", "--algo", "ppo", "--env", "CartPole-v1", "--hyperparams-file", "rl_zoo3_ppo.yml"],
        "'clip_range_vf': must start above 0, got 0 at step 0",
    ),
    (["train", "--resume", "nowhere"], "no such run folder"),
    (["train", "--resume", "nowhere", "-n", "0"], "-n/--timesteps must be at least 1"),
    (["train", "--resume", "nowhere", "--seed", "3"], "cannot be combined"),
    (["schedule", "--algo", "dqn", "--env", "Breakout", "--width", "5"], "--width"),
    (["enjoy", "--algo", "dqn", "--env", "Breakout", "--episodes", "0"], "--episodes"),
    (["enjoy", "--pretrained", "nope"], "no such shipped agent"),
    (["report", "--log-dir", "nowhere"], "no such log folder"),
    (["plot", "--algo", "dqn"], "give --algo and --env together"),
    (
        ["benchmark", "--algos", "dqn", "--envs", "CartPole-v1", "--eval-games", "0"],
        "--eval-games",
    ),
    (["benchmark", "--algos", "dqn", "--envs", "Nope"], "unknown env"),
    (
        [
            "benchmark",
            "--algos",
            "dqn",
            "--envs",
            "CartPole-v1",
            "--seeds",
            "0",
            "1",
            "--cells",
            *CELLS,
        ],
        "--cells names 'dqn_CartPole-v1_seed0' more than once; name each cell once",
    ),
    ([*TUNE[:5], "--trials", "0", "--trial-steps", "100"], "--trials must be >= 1"),
    ([*TUNE, "--storage", "."], "that is a folder; give a journal file"),
    ([*TUNE, "--storage", ""], "--storage '': give a journal file path"),
    ([*TUNE, "--storage", "postgresql://"], "name the server and the database"),
    # A text file of the user's is not a journal: refused before a record is appended to it.
    ([*TUNE, "--storage", "duplicate_keys.yml"], "not an Optuna study journal"),
    ([*TUNE, "--hyperparams-file", "/dev/zero"], "over 4 MiB"),
    (["report", "--log-dir", ".", "--references", "binary.yml"], "not a UTF-8 text file"),
    (
        ["report", "--log-dir", ".", "--references", "equal_scores.md"],
        "Pong's Human score equals its Random score (-20.7)",
    ),
    (["schedule", "--algo", "dqn", "--env", "Breakout", "-o", "."], "is a folder"),
    (["schedule", "--algo", "dqn", "--env", "Breakout", "-o", "x.txt"], "ending in .png"),
    (["enjoy", "--algo", "dqn", "--env", "Breakout", "--epsilon", "2"], "--epsilon 2"),
    (["enjoy", "--algo", "dqn", "--env", "Breakout", "--fps", "0"], "--fps 0"),
    (["enjoy", "--algo", "dqn", "--env", "Breakout", "--record", "."], "--record ."),
    (
        ["train", "--algo", "a2c", "--env", "Breakout", "--set", "augmentation=random_shift"],
        "augments batches drawn from a replay buffer",
    ),
    ([*TRAIN, "--set", "augmentation=random_shift"], "shifts pixel images"),
    ([*BREAKOUT, "--set", "augmentation=flip"], "expected one of random_shift"),
    (["benchmark", "--suite", "atari57"], "invalid choice"),
    (["benchmark", "--suite", "atari100k", "--games", "Tetris"], "not an Atari-100k game"),
    (["benchmark", "--suite", "atari100k", "--envs", "Pong"], "drop --envs"),
    (["benchmark", "--suite", "atari100k", "--preset", "nope"], "unknown preset"),
    (["benchmark", "--suite", "atari100k", "--report"], "give --rows DIR"),
    (["benchmark", "--algos", "dqn"], "give --algos and --envs"),
    (["benchmark", "--algos", "dqn", "--envs", "Pong", "--games", "Pong"], "go with --suite"),
    (["enjoy", "--model", "crafted.zip", "--env", "CartPole-v1"], "needs code that zoo does not"),
    (["enjoy", "--model", "damaged.zip", "--env", "CartPole-v1"], "damaged.zip: its policy_class"),
    ([*TRAIN, "--init-from", "binary.yml"], "not a readable model zip"),
    (
        ["enjoy", "--model", "cartpole.zip", "--env", "Acrobot-v1"],
        "trained with observations float32 (4,), but Acrobot-v1 has observations float32 (6,)",
    ),
    ([*TRAIN, "--init-from", "crafted.zip"], "needs code that zoo does not run"),
    (["train", *ENVS, "--algo", "dqn", "--env", "ZooFuzzSteering-v0"], "dqn takes Discrete"),
    (
        ["train", *ENVS, "--algo", "a2c", "--env", "ZooFuzzMissing-v0"],
        "cannot create env "
        "ZooFuzzMissing-v0: ModuleNotFoundError: No module named 'zoo_no_such_simulator'",
    ),
]


def _run(args: list[str]) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:  # argparse's own errors
            code = int(exit_.code or 0)
    return code, stderr.getvalue()


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # --gym-packages zoo_fuzz_envs
    # ...imported for this case only: later env workers of this process must not import it.
    monkeypatch.setattr(gym_packages, "_IMPORTED", list(gym_packages.imported_gym_packages()))
    for name, content in FILES.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    code, stderr = _run(args)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert len(stderr) <= 700
    assert expected in stderr
    # Nothing left behind (no run folder, not even the empty log folders made for one), and
    # the user's files as they were.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    for name, content in FILES.items():
        path = tmp_path / name
        assert (path.read_bytes() if isinstance(content, bytes) else path.read_text()) == content
