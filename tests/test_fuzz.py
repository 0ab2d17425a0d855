"""Bad input, table-driven: one line on stderr, exit code 2, no traceback, nothing created
or changed.

In process and without training, so it runs in the fast tier.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from zoo.cli import main

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
}

TRAIN = ["train", "--algo", "dqn", "--env", "CartPole-v1"]
BREAKOUT = ["train", "--algo", "dqn", "--env", "Breakout"]
TUNE = ["tune", "--algo", "dqn", "--env", "CartPole-v1", "--trials", "1", "--trial-steps", "100"]

CASES: list[tuple[list[str], str]] = [
    (["train", "--algo", "dqn", "--env", "Nope"], "unknown env"),
    (["train", "--algo", "xyz", "--env", "Breakout"], "invalid choice"),
    # Refused by the memory admission before anything is allocated or created.
    ([*TRAIN, "--set", "buffer_size=1e12"], "the replay buffer needs 52,000.00 GB of memory"),
    ([*TRAIN, "--set", "buffer_size=1e30"], "GB is available; lower buffer_size"),
    ([*TRAIN, "--set", "policy_kwargs.optimizer_kwargs={lr: 5}"], "the step size is learning_rate"),
    ([*TRAIN, "--set", "policy_kwargs.optimizer_kwargs={betas: [2, 3]}"], "Invalid beta"),
    ([*TRAIN, "--set", "policy_kwargs.optimizer_kwargs={eps: -1}"], "Invalid epsilon"),
    ([*TRAIN, "--set", "batch_size=5000", "--set", "buffer_size=100"], "larger than the replay"),
    ([*BREAKOUT, "--set", "env_kwargs.repeat_action_probability=7"], "in [0, 1], got 7"),
    ([*BREAKOUT, "--set", "env_kwargs.max_num_frames_per_episode=-1"], "integer >= 0"),
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
    ([*TUNE[:5], "--trials", "0", "--trial-steps", "100"], "--trials must be >= 1"),
    ([*TUNE, "--storage", "."], "that is a folder; give a journal file"),
    ([*TUNE, "--storage", ""], "--storage '': give a journal file path"),
    ([*TUNE, "--storage", "postgresql://"], "name the server and the database"),
    # A text file of the user's is not a journal: refused before a record is appended to it.
    ([*TUNE, "--storage", "duplicate_keys.yml"], "not an Optuna study journal"),
    ([*TUNE, "--hyperparams-file", "/dev/zero"], "over 4 MiB"),
    (["report", "--log-dir", ".", "--references", "binary.yml"], "not a UTF-8 text file"),
    (["schedule", "--algo", "dqn", "--env", "Breakout", "-o", "."], "is a folder"),
    (["schedule", "--algo", "dqn", "--env", "Breakout", "-o", "x.txt"], "ending in .png"),
    (["enjoy", "--algo", "dqn", "--env", "Breakout", "--epsilon", "2"], "--epsilon 2"),
    (["enjoy", "--algo", "dqn", "--env", "Breakout", "--fps", "0"], "--fps 0"),
    (["enjoy", "--algo", "dqn", "--env", "Breakout", "--record", "."], "--record ."),
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
