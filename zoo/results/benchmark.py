"""`zoo benchmark`: a grid of algo x env x seed, each cell an ordinary run folder.

Cells live in `<log-dir>/benchmark/<grid>/<algo>_<env>_seed<S>/`. `grid.yml` records what
defines the grid, so a re-run of the same command skips finished cells, resumes interrupted
ones from their newest checkpoint (the `--resume` machinery) and starts the rest; another
grid under the same name is refused. A finished cell is then played for `--eval-games` whole
games with its final and its best model; `benchmark.yml` in the cell keeps those scores and
the training wall time, and `zoo.results.benchmark_report` turns them into results.csv/results.md.
The cells run one after another or in processes of their own (zoo.results.benchmark_workers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.callbacks import BaseCallback

from zoo.config.config import Config, build_config
from zoo.core.atomic import atomic_write_text
from zoo.core.errors import UserError
from zoo.core.yamlio import dump_yaml, read_yaml_file
from zoo.envs.stack import resolve_env
from zoo.runs.folders import RUN_FILE

if TYPE_CHECKING:
    from zoo.runs.folders import Run
    from zoo.runs.tracking import Tracking
    from zoo.training.model_setup import StartPoint
    from zoo.training.train import TrainOptions

GRID_FILE = "grid.yml"
CELL_FILE = "benchmark.yml"
# Seeds of the final evaluation's games: game i plays with seed FINAL_EVAL_SEED + i.
FINAL_EVAL_SEED = 0


@dataclasses.dataclass(frozen=True)
class Grid:
    """What a benchmark trains: every algo on every env with every seed, one setting."""

    name: str
    algos: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    hyperparams_file: Path | None = None
    timesteps: int | None = None
    gym_packages: tuple[str, ...] = ()  # imported again in each cell's process
    record_every: int | None = None  # --record-every: videos in each cell's folder
    tracking: Tracking | None = None  # --track: each cell is a tracked run (not the identity)

    def identity(self) -> dict[str, Any]:
        """What makes two grids the same grid (the contents of the file, not its path)."""
        file_hash = None
        if self.hyperparams_file is not None:
            try:
                file_hash = hashlib.sha256(self.hyperparams_file.read_bytes()).hexdigest()
            except OSError as error:
                raise UserError(
                    f"cannot read --hyperparams-file {self.hyperparams_file}: {error.strerror}"
                ) from None
        identity: dict[str, Any] = {
            "algos": list(self.algos),
            "envs": list(self.envs),
            "seeds": list(self.seeds),
            "preset": self.preset,
            "set": list(self.overrides),
            "hyperparams_file_sha256": file_hash,
            "timesteps": self.timesteps,
        }
        if self.record_every is not None:  # only then: grids from before it keep their identity
            identity["record_every"] = self.record_every
        return identity

    def config(self, algo: str, env: str, seed: int) -> Config:
        return build_config(
            algo,
            env,
            hyperparams_file=self.hyperparams_file,
            overrides=self.overrides,
            flags=[
                ("-n/--timesteps", "n_timesteps", self.timesteps),
                ("--seeds", "seed", seed),
                ("--record-every", "record_every", self.record_every),
            ],
            preset=self.preset,
        )


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    algo: str
    env: str  # the resolved env name
    seed: int
    path: Path
    config: Config

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def info_file(self) -> Path:
        return self.path / CELL_FILE


def default_grid_name(algos: Sequence[str], envs: Sequence[str]) -> str:
    return f"{'-'.join(algos)}_{'-'.join(env.replace('/', '-') for env in envs)}"


def grid_cells(grid: Grid, grid_dir: Path) -> list[Cell]:
    """Every cell of the grid, its config built and checked before anything is written."""
    cells = []
    for algo in grid.algos:
        for env in grid.envs:
            for seed in grid.seeds:
                try:
                    config = grid.config(algo, env, seed)
                except UserError as error:  # in a grid of several, say whose setting it is
                    if len(grid.algos) == 1 and len(grid.envs) == 1:
                        raise
                    raise UserError(f"{algo} on {env}: {error}") from None
                name = f"{algo}_{config.env.folder_name}_seed{seed}"
                cells.append(Cell(name, algo, config.env.name, seed, grid_dir / name, config))
    names = [cell.name for cell in cells]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(
            f"the grid names cell {duplicates[0]} twice; list each algo, env, seed once"
        )
    return cells


def select_cells(cells: Sequence[Cell], wanted: Sequence[str]) -> list[Cell]:
    if not wanted:
        return list(cells)
    by_name = {cell.name: cell for cell in cells}
    twice = next((name for name in wanted if wanted.count(name) > 1), None)
    if twice is not None:
        raise UserError(f"--cells names {twice!r} more than once; name each cell once")
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise UserError(
            f"--cells: no cell {unknown[0]!r} in this grid; its cells: {', '.join(by_name)}"
        )
    return [by_name[name] for name in wanted]


def claim_grid_dir(grid: Grid, grid_dir: Path) -> None:
    """Write grid.yml, or check that the folder already holds this very grid."""
    identity = grid.identity()
    grid_file = grid_dir / GRID_FILE
    if grid_file.is_file():
        saved = read_yaml_file(grid_file, what="benchmark grid file")
        if not isinstance(saved, dict) or not isinstance(saved.get("grid"), dict):
            raise UserError(
                f"{grid_file} is damaged (no grid mapping in it); restore it, or give this grid "
                "its own --name"
            )
        if _order_free(saved["grid"]) != _order_free(identity):
            raise UserError(
                f"{grid_dir} holds another benchmark grid ({grid_file} differs); give this one "
                "its own --name, or repeat that grid's exact options"
            )
        return
    if grid_dir.exists() and any(grid_dir.iterdir()):
        raise UserError(f"{grid_dir} exists and is not a benchmark folder; give another --name")
    try:
        grid_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {grid_dir}: {error.strerror}") from None
    atomic_write_text(grid_file, dump_yaml({"name": grid.name, "grid": identity}))


def _order_free(identity: dict[str, Any]) -> dict[str, Any]:
    """A grid's identity with its algos, envs and seeds as sets, each env by its resolved
    name: `--seeds 1 0 --envs breakout` is the grid of `--seeds 0 1 --envs Breakout`."""

    def env_name(name: Any) -> Any:
        try:
            return resolve_env(str(name)).name
        except UserError:  # a custom env whose package is not imported: as written
            return name

    def as_set(values: Any, key: Callable[[Any], Any] = lambda value: value) -> Any:
        return sorted({key(v) for v in values}, key=str) if isinstance(values, list) else values

    return {
        **identity,
        "algos": as_set(identity.get("algos")),
        "envs": as_set(identity.get("envs"), env_name),
        "seeds": as_set(identity.get("seeds")),
    }


def read_cell_info(cell_path: Path) -> dict[str, Any]:
    path = cell_path / CELL_FILE
    if not path.is_file():
        return {}
    info = read_yaml_file(path, what="benchmark cell file")
    return info if isinstance(info, dict) else {}


def update_cell_info(cell_path: Path, **changes: Any) -> dict[str, Any]:
    info = read_cell_info(cell_path)
    info.update(changes)
    atomic_write_text(cell_path / CELL_FILE, dump_yaml(info))
    return info


@dataclasses.dataclass(frozen=True)
class CellOutcome:
    name: str
    state: str  # trained, skipped (already finished) or interrupted
    exit_code: int = 0  # 130 or 143 when Ctrl-C or SIGTERM stopped it


def run_cell(
    cell: Cell,
    eval_games: int,
    device: str,
    argv: Sequence[str],
    quiet: bool,
    tracking: Tracking | None = None,
) -> CellOutcome:
    """Train the cell to its total (fresh, resumed or not at all), then evaluate it."""
    from zoo.runs.folders import Run, training_lock
    from zoo.training.train import TrainOptions, progress_stream, train

    say: Callable[[str], None] = (lambda _: None) if quiet else _say_for(cell.name)
    options = TrainOptions(
        device=device,
        progress_stream=progress_stream(quiet),
        say=say,
        command=("benchmark", *argv),
        tracking=tracking,
    )
    try:
        cell.path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {cell.path}: {error.strerror}") from None
    run = Run(cell.path)
    state = "skipped"
    with training_lock(run):  # before anything in the cell's folder is read or written
        prepared = _prepare_training(cell, run, device, options)
        if prepared is not None:
            config, start = prepared
            update_cell_info(cell.path, machine=machine_description())
            clock = TrainingClock(cell, float(read_cell_info(cell.path).get("train_seconds", 0.0)))
            result = train(config, run, options, extra_callbacks=[clock], start=start)
            clock.record()
            if result.interrupted:
                return CellOutcome(cell.name, "interrupted", result.exit_code)
            state = "trained"
        _evaluate_cell(cell, eval_games, say)
    return CellOutcome(cell.name, state)


class TrainingClock(BaseCallback):
    """Keeps the cell's `train_seconds` (all sessions together) in benchmark.yml, written at
    rollout ends every `every` seconds: a session killed mid-run (kill -9) still counts,
    where a total written only at the end left the cell's wall time and steps/s to its
    last session alone."""

    def __init__(self, cell: Cell, before: float, every: float = 5.0) -> None:
        super().__init__()
        self.cell, self.before, self.every = cell, before, every
        self.started = self.recorded = time.monotonic()

    def record(self) -> None:
        self.recorded = time.monotonic()
        update_cell_info(self.cell.path, train_seconds=self.before + self.recorded - self.started)

    def _on_rollout_end(self) -> None:
        if time.monotonic() - self.recorded >= self.every:
            self.record()

    def _on_step(self) -> bool:
        return True


def _say_for(name: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"[{name}] {message}", flush=True)

    return say


def _prepare_training(
    cell: Cell, run: Run, device: str, options: TrainOptions
) -> tuple[Config, StartPoint] | None:
    """(config, start point) to train, or None when the cell is already finished."""
    from zoo.runs.folders import write_run_files
    from zoo.training.model_setup import StartPoint
    from zoo.training.resume import prepare_resume

    if not cell.run_file.is_file():
        write_run_files(run, cell.config, device, list(options.command))
        options.say(
            f"training {cell.algo} on {cell.env}, seed {cell.seed}, to {cell.config.n_timesteps:,}"
        )
        return cell.config, StartPoint()
    info = run.read_info()
    total = cell.config.n_timesteps
    if info.get("status") == "finished" and int(info.get("timesteps") or 0) >= total:
        options.say(f"already trained ({total:,} steps)")
        return None
    resumption = prepare_resume(run, None, options.warn)
    if resumption.finished_now:
        options.say(f"wrote the final model of step {resumption.start.step:,} (its total)")
        return None
    return resumption.config, resumption.start  # train() says "Resuming ... at step N"


def machine_description() -> dict[str, Any]:
    """The machine a cell trained on: CPU, cores, GPU and the versions that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    versions = {}
    for package in ("torch", "stable-baselines3", "ale-py"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "?"
    return {"cpu": cpu, "cores": os.cpu_count() or 0, "gpu": gpu, **versions}


def evaluation_modes(algo: str) -> tuple[str, ...]:
    """Greedy for every algo; sampled too where the policy samples its actions."""
    from zoo.schema.keys import SCHEMAS

    samples = "buffer_size" not in SCHEMAS[algo].algorithm
    return ("sampled", "greedy") if samples else ("greedy",)


def _evaluate_cell(cell: Cell, eval_games: int, say: Callable[[str], None]) -> None:
    """Whole games of the final and the best model, kept in the cell's benchmark.yml."""
    from zoo.results.enjoy import ChosenModel, choose_model, run_config
    from zoo.runs.folders import Run

    info = read_cell_info(cell.path)
    done = info.get("final_evaluation")
    if isinstance(done, dict) and done.get("games") == eval_games:
        return
    run = Run(cell.path)
    config = run_config(run)  # the settings the cell trained with, as its config.yml says
    seeds = final_evaluation_seeds(eval_games)
    results: dict[str, Any] = {"games": eval_games, "seeds": seeds}
    for kind in ("final", "best"):
        try:
            chosen: ChosenModel = choose_model(run, kind)
        except UserError:
            continue  # no best model: the run had no evaluation
        results[kind] = evaluate_model(chosen.path, config, seeds, say, f"{kind} model")
    update_cell_info(cell.path, final_evaluation=results)


def final_evaluation_seeds(eval_games: int) -> list[int]:
    return [FINAL_EVAL_SEED + game for game in range(eval_games)]


def evaluate_model(
    model_path: Path,
    config: Config,
    seeds: Sequence[int],
    say: Callable[[str], None],
    what: str,
) -> dict[str, Any]:
    """One whole game per seed with a saved model, in each evaluation mode of its algo:
    {mode: {scores, lengths, seconds}}."""
    results: dict[str, Any] = {}
    for mode in evaluation_modes(config.algo):
        started = time.monotonic()
        scores, lengths = play_model(
            model_path, config, seeds, mode == "sampled", config.evaluation.epsilon
        )
        results[mode] = {
            "scores": scores,
            "lengths": lengths,
            "seconds": round(time.monotonic() - started, 1),
        }
        mean = sum(scores) / len(scores)
        say(f"{what}, {mode} actions: mean {mean:g} over {len(seeds)} games")
    return results


def play_model(
    model_path: Path, config: Config, seeds: Sequence[int], sampled: bool, epsilon: float
) -> tuple[list[float], list[int]]:
    """One whole game per seed with a saved model, all side by side, a random action
    replacing the chosen one with probability `epsilon` (the config's eval_epsilon)."""
    from zoo.algorithms.model_loading import load_model
    from zoo.envs.stack import make_eval_env
    from zoo.runs.evaluation import ActionChooser, GameTable

    model = load_model(model_path, device="cpu")
    settings = config.env_settings()
    max_frames = config.evaluation.max_frames
    table = GameTable(lambda seed: make_eval_env(config.env, settings, seed, max_frames))
    return table.play(ActionChooser(model, epsilon, sampled), seeds)
