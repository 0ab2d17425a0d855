"""Run folders: `logs/<algo>/<Env>_<n>/`, the unit a user trains, resumes, plays and plots.

A run folder holds `config.yml` (every hyperparameter, usable as --hyperparams-file),
`run.yml` (algo, env, command line, versions, status, resumes), `monitor/` (per-env Monitor
CSVs), TensorBoard event files, `progress.csv`, `evaluations.csv`, `checkpoints/`,
`best_model.zip` and `final_model.zip`. Run folders of rl-baselines3-zoo open too
(`layout="rl_zoo3"`, zoo/config/rl_zoo3.py knows their files), to be played, plotted and reported.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import platform
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from zoo.config.config import Config
from zoo.core.atomic import atomic_write_text, write_atomically
from zoo.core.errors import UserError
from zoo.core.yamlio import dump_yaml, read_yaml_file
from zoo.envs.stack import resolve_env
from zoo.runs import rl_zoo3_runs
from zoo.runs.evaluation import BEST_MODEL, EVALUATIONS_FILE

CONFIG_FILE = "config.yml"
RUN_FILE = "run.yml"
FINAL_MODEL = "final_model.zip"
CHECKPOINTS_DIR = "checkpoints"
VIDEOS_DIR = "videos"  # record_every's videos
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Run:
    path: Path
    layout: str = "zoo"  # or "rl_zoo3": a run folder rl-baselines3-zoo wrote

    @property
    def config_file(self) -> Path:
        if self.layout == "rl_zoo3":
            return rl_zoo3_runs.config_file(self.path)
        return self.path / CONFIG_FILE

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def monitor_dir(self) -> Path:
        return self.path / "monitor"

    @property
    def final_model(self) -> Path:
        if self.layout == "rl_zoo3":
            return rl_zoo3_runs.final_model(self.path)
        return self.path / FINAL_MODEL

    @property
    def best_model(self) -> Path:
        return self.path / BEST_MODEL  # the same name in both layouts

    @property
    def evaluations_file(self) -> Path:
        if self.layout == "rl_zoo3":
            return self.path / rl_zoo3_runs.EVALUATIONS_FILE
        return self.path / EVALUATIONS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def videos_dir(self) -> Path:
        return self.path / VIDEOS_DIR

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    def read_info(self) -> dict[str, Any]:
        if self.layout == "rl_zoo3":
            return rl_zoo3_runs.run_info(self.path)
        info = read_yaml_file(self.run_file, what="run file")
        return info if isinstance(info, dict) else {}


def create_run(log_dir: Path, algo: str, env_folder_name: str) -> Run:
    """Create the next free `<log_dir>/<algo>/<env>_<n>` folder; safe against concurrent runs."""
    parent = log_dir / algo
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create log folder {parent}: {error.strerror}") from None
    prefix = f"{env_folder_name}_"
    taken = [p.name[len(prefix) :] for p in parent.iterdir() if p.name.startswith(prefix)]
    number = max((int(n) for n in taken if n.isdigit()), default=0) + 1
    while True:
        path = parent / f"{prefix}{number}"
        try:
            path.mkdir()  # atomic: two processes never get the same folder
        except FileExistsError:
            number += 1
            continue
        except OSError as error:
            raise UserError(f"cannot create run folder {path}: {error.strerror}") from None
        return Run(path)


def start_run(log_dir: Path, config: Config, device: str, argv: Sequence[str]) -> Run:
    """Create a run folder and write what reproduces it, before any env or model exists."""
    run = create_run(log_dir, config.algo, config.env.folder_name)
    write_run_files(run, config, device, argv)
    return run


def write_run_files(run: Run, config: Config, device: str, argv: Sequence[str]) -> None:
    """config.yml and run.yml: what reproduces the run, written before any env or model."""
    atomic_write_text(run.config_file, dump_yaml(config.to_dict()))
    info = {
        "algo": config.algo,
        "env": config.env.name,
        "seed": config.seed,
        "device": device,
        "command": shlex.join(["zoo", *argv]),
        "cwd": os.getcwd(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
        "timesteps": 0,
        "total_timesteps": config.n_timesteps,
        "versions": _versions(),
    }
    atomic_write_text(run.run_file, dump_yaml(info))


def open_run(path: Path) -> Run:
    """An existing run folder, or one line saying why `path` is not one."""
    if not path.is_dir():
        raise UserError(
            f"{path}: no such run folder; give one that zoo train made (logs/<algo>/<env>_<n>)"
        )
    run = Run(path)
    missing = [f.name for f in (run.run_file, run.config_file) if not f.is_file()]
    if missing and rl_zoo3_runs.is_run_folder(path):
        return Run(path, layout="rl_zoo3")
    if missing:
        raise UserError(
            f"{path}: not a run folder (no {' or '.join(missing)}); give one that zoo train "
            "or rl-baselines3-zoo made (logs/<algo>/<env>_<n>)"
        )
    info = run.read_info()
    if not isinstance(info.get("algo"), str) or not isinstance(info.get("env"), str):
        raise UserError(f"{run.run_file}: names no algo and env; the run folder is damaged")
    return run


def numbered_runs(log_dir: Path, algo: str, env_name: str) -> dict[int, Path]:
    """The run folders `<log_dir>/<algo>/<env>_<n>` by n."""
    prefix = f"{resolve_env(env_name).folder_name}_"
    return {
        int(path.name[len(prefix) :]): path
        for path in (log_dir / algo).glob(f"{prefix}*")
        if path.name[len(prefix) :].isdigit() and path.is_dir()
    }


def find_run(
    log_dir: Path,
    algo: str,
    env_name: str,
    exp_id: int | None,
    usable: Callable[[Run], object] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Run:
    """The run `logs/<algo>/<env>_<exp_id>`, or the newest one of that algo and env for which
    `usable` raises no UserError (zoo's and rl_zoo3's runs share these folder names)."""
    numbered = numbered_runs(log_dir, algo, env_name)
    if exp_id is not None:
        if exp_id not in numbered:
            folder = log_dir / algo / f"{resolve_env(env_name).folder_name}_{exp_id}"
            raise UserError(f"no run {folder}; {runs_found(log_dir, algo, env_name)}")
        return open_run(numbered[exp_id])
    if not numbered:
        raise UserError(
            f"no {algo} run of {resolve_env(env_name).name} in {log_dir}; "
            f"{runs_found(log_dir, algo, env_name)}"
        )
    passed_over: list[str] = []
    for number in sorted(numbered, reverse=True):
        try:
            run = open_run(numbered[number])
            if usable is not None:
                usable(run)
        except UserError as error:
            passed_over.append(f"{numbered[number].name} ({error})")
            continue
        if len(numbered) > 1:
            skipped = f", passing over {', '.join(passed_over)}" if passed_over else ""
            say(f"Chose {run.path}, the newest usable one of {len(numbered)} runs{skipped}")
        return run
    raise UserError(f"none of the {algo} runs of {resolve_env(env_name).name} in {log_dir} can "
                    f"be used: {'; '.join(passed_over)}")  # fmt: skip


def run_files(log_dir: Path) -> list[Path]:
    """run.yml of every run under `log_dir`: `<algo>/<env>_<n>/` and benchmark cells
    `benchmark/<grid>/<cell>/`."""
    return sorted([*log_dir.glob("*/*/run.yml"), *log_dir.glob("benchmark/*/*/run.yml")])


def run_folders(log_dir: Path) -> list[Run]:
    """Every run under `log_dir`: zoo's (see run_files) and rl-baselines3-zoo's
    `<algo>/<EnvId>_<n>/`."""
    zoo_runs = [Run(path.parent) for path in run_files(log_dir)]
    others = {path.parent.parent for path in log_dir.glob("*/*/*/args.yml")}
    their_runs = [
        Run(path, layout="rl_zoo3")
        for path in others
        if not (path / RUN_FILE).is_file() and rl_zoo3_runs.is_run_folder(path)
    ]
    return sorted([*zoo_runs, *their_runs], key=lambda run: run.path)


def runs_found(log_dir: Path, algo: str, env_name: str) -> str:
    """Which runs exist, and the command that would train the one that was asked for."""
    found = [str(run.path.relative_to(log_dir)) for run in run_folders(log_dir)]
    listed = f"runs found: {', '.join(found)}" if found else f"no runs in {log_dir}"
    return f"{listed}; train one with: zoo train --algo {algo} --env {env_name}"


# What flock raises on a filesystem that keeps no locks (rather than a lock held elsewhere).
_NO_LOCKS_HERE = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)
# Run folders whose lock this process holds, with how many blocks hold it.
_HELD_LOCKS: dict[Path, int] = {}


@contextlib.contextmanager
def training_lock(run: Run) -> Iterator[None]:
    """Held while a process touches `run` to train it: from the first look at its
    checkpoints to the final save. The OS releases it when the process dies. Nested blocks
    of one process share the lock."""
    key = run.path.resolve()
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key] -= 1
        return
    try:
        handle = open(run.lock_file, "a+")  # noqa: SIM115  (held for the whole training)
    except OSError as error:
        raise UserError(f"cannot lock {run.path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"{run.path} is being trained by another zoo process; wait for it or stop it"
            ) from None
        except OSError as error:
            if error.errno not in _NO_LOCKS_HERE:
                raise UserError(f"cannot lock {run.path}: {error.strerror}") from None
            # Lustre without its flock mount option, some FUSE filesystems: train unlocked
            # (a Slurm task holds its own claim, zoo/cluster/requeue.py).
            print(
                f"zoo: note: the filesystem of {run.path} takes no file locks "
                f"({error.strerror}); nothing keeps a second zoo process from training it too",
                file=sys.stderr,
                flush=True,
            )
        _HELD_LOCKS[key] = 1
        try:
            yield
        finally:
            del _HELD_LOCKS[key]
    finally:
        handle.close()


def missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def discard_unstarted_run(run: Run, made_folders: Sequence[Path] = ()) -> None:
    """Remove a run folder this process just created, when nothing in it was trained, and
    the log folders (`made_folders`, from `missing_folders`) it created for it, if empty."""
    if run.checkpoints_dir.exists() or run.final_model.exists():
        return
    if run.read_info().get("timesteps", 0) == 0:
        shutil.rmtree(run.path, ignore_errors=True)
        for folder in made_folders:
            with contextlib.suppress(OSError):  # not empty: another run is there now
                folder.rmdir()


def mark_resumed(run: Run, from_step: int, total_timesteps: int, argv: Sequence[str]) -> None:
    info = run.read_info()
    earlier = info.get("resumes")
    resumes: list[Any] = earlier if isinstance(earlier, list) else []
    resumes.append(
        {
            "from_step": from_step,
            "command": shlex.join(["zoo", *argv]),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )
    info.update(status="running", total_timesteps=total_timesteps, resumes=resumes)
    atomic_write_text(run.run_file, dump_yaml(info))


def update_run_status(run: Run, status: str, timesteps: int) -> None:
    info = run.read_info()
    info.update(status=status, timesteps=timesteps)
    info["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = dump_yaml(info)
    try:
        atomic_write_text(run.run_file, text)
    except OSError:
        _overwrite_in_place(run.run_file, text)


def _overwrite_in_place(path: Path, text: str) -> None:
    """On a full disk, or in a folder made read-only, no new file can be made, but a small
    file can be rewritten within the space it already holds: a run that ends so still says
    `failed` (docs/guide/checkpoints.md promises it). Only where the atomic write failed."""
    data = text.encode("utf-8")
    if len(data) > os.stat(path).st_blocks * 512:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    with open(path, "r+b") as file:
        file.write(data)
        file.truncate()
        file.flush()
        os.fsync(file.fileno())


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("zoo", "stable-baselines3", "sb3-contrib", "gymnasium", "ale-py", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def save_model_atomically(model: BaseAlgorithm, path: Path) -> None:
    """Save an SB3 model so that a crash mid-write never leaves a truncated zip at `path`."""
    write_atomically(path, model.save)
