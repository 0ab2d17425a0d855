"""rl-baselines3-zoo's run folders, read as zoo reads its own: rl_zoo3 writes
`logs/<algo>/<EnvId>_<N>/` holding `<EnvId>.zip`, `best_model.zip`, `evaluations.npz`,
`<i>.monitor.csv` and `<EnvId>/{args,config}.yml` (its saved hyperparameters, in the format
zoo/config/rl_zoo3.py reads).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from zoo.config import rl_zoo3
from zoo.core.errors import UserError
from zoo.core.textfiles import read_text_file
from zoo.core.yamlio import parse_yaml_text
from zoo.envs.stack import resolve_env

EVALUATIONS_FILE = "evaluations.npz"  # best_model.zip: the same name as zoo's (Run.best_model)


def params_dir(path: Path) -> Path | None:
    """`<run>/<EnvId>/`, where rl_zoo3 keeps args.yml and config.yml; None if there is none."""
    if not path.is_dir():
        return None
    for child in sorted(path.iterdir()):
        if (child / "config.yml").is_file() and (child / "args.yml").is_file():
            return child
    return None


def is_run_folder(path: Path) -> bool:
    return params_dir(path) is not None


def config_file(path: Path) -> Path:
    folder = params_dir(path)
    return (folder if folder is not None else path) / "config.yml"


def final_model(path: Path) -> Path:
    """`<run>/<EnvId>.zip`, the model rl_zoo3 saves at the end of training."""
    folder = params_dir(path)
    return path / f"{folder.name if folder is not None else path.name}.zip"


def run_info(path: Path) -> dict[str, Any]:
    """algo, env and steps of an rl_zoo3 run, as zoo's run.yml names them."""
    folder = params_dir(path)
    if folder is None:
        raise UserError(f"{path}: not an rl_zoo3 run folder (no <EnvId>/args.yml and config.yml)")
    args = parse_yaml_text(read_text_file(folder / "args.yml", "args file"),
                           str(folder / "args.yml"), rl_zoo3.RlZoo3Loader)  # fmt: skip
    args = args if isinstance(args, dict) else {}
    algo = args.get("algo") or path.parent.name
    env = args.get("env") or folder.name
    if not isinstance(algo, str) or not isinstance(env, str):
        raise UserError(f"{folder / 'args.yml'}: names no algo and env; the run folder is damaged")
    with contextlib.suppress(UserError):  # an env not registered here is said where it is needed
        env = resolve_env(env).name
    rows = evaluations(path / EVALUATIONS_FILE)
    steps = rows[-1][0] if rows else 0
    done = final_model(path).is_file()
    if done:
        steps = max(steps, _final_steps(final_model(path), args, folder))
    return {"algo": algo.lower(), "env": env, "timesteps": steps,
            "status": "finished" if done else "unknown", "format": "rl_zoo3"}  # fmt: skip


def _final_steps(model: Path, args: Mapping[str, Any], folder: Path) -> int:
    """Steps the final model was trained for: its own count, else what args.yml's -n asked
    for, else config.yml's n_timesteps (which -n overrides)."""
    trained = None
    # SB3's "data" entry is JSON (its pickled values are strings in it): nothing is unpickled.
    damaged = (OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile)
    with contextlib.suppress(*damaged), zipfile.ZipFile(model) as archive:
        trained = _count(json.loads(archive.read("data")).get("num_timesteps"))
    asked = _count(args.get("n_timesteps"))  # rl_zoo3's -n; -1 means "as config.yml says"
    if trained is None and asked is None:
        config = parse_yaml_text(read_text_file(folder / "config.yml", "config file"),
                                 str(folder / "config.yml"), rl_zoo3.RlZoo3Loader)  # fmt: skip
        asked = _count(config.get("n_timesteps") if isinstance(config, dict) else None)
    return next((steps for steps in (trained, asked) if steps is not None), 0)


def _count(value: Any) -> int | None:
    """A positive step count, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    return None


def evaluations(path: Path) -> list[tuple[int, list[float]]]:
    """(step, whole-game scores) of each evaluation in rl_zoo3's evaluations.npz."""
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as data:
            steps = np.asarray(data["timesteps"]).reshape(-1)
            results = np.asarray(data["results"], dtype=np.float64)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{path}: not a readable evaluations file ({error})") from None
    results = results.reshape(len(steps), -1) if len(steps) else results.reshape(0, 0)
    return [(int(step), [float(s) for s in row]) for step, row in zip(steps, results, strict=True)]


def training_games(path: Path, frames_per_step: int) -> tuple[np.ndarray, np.ndarray]:
    """(step, score) of every finished game in the run's `*.monitor.csv` files, in the order
    they ended; the step is the agent steps of the games finished so far (all envs), which
    is how SB3's own plots count. Atari monitors count frames: `frames_per_step` converts."""
    games: list[tuple[float, float, float]] = []
    for monitor in sorted(path.glob("*.monitor.csv")):
        text = read_text_file(monitor, "monitor file")
        lines = text.splitlines()
        body = "\n".join(lines[1:] if lines and lines[0].startswith("#") else lines)
        try:
            for row in csv.DictReader(io.StringIO(body)):
                games.append((float(row["t"]), float(row["r"]), float(row["l"])))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{monitor}: malformed monitor file (columns r, l, t)") from None
    games.sort(key=lambda game: game[0])
    lengths = np.array([length for _, _, length in games], dtype=np.float64)
    scores = np.array([score for _, score, _ in games], dtype=np.float64)
    return np.cumsum(lengths) / max(1, frames_per_step), scores
