"""Agents shipped inside the package: `zoo enjoy --pretrained NAME` plays them offline.

Each agent is a small run folder in `zoo/pretrained/<algo>-<Game>/`: `run.yml` and
`config.yml` as `zoo train` writes them, `final_model.zip` with the policy's float32 weights
(the optimizer's running statistics left out) and `card.yml`, the model card: algo, every
setting, steps, the score over whole games with their seeds, date, machine and the command
that reproduces it. `package_agent` makes one from a finished run, or from the newest
checkpoint of an unfinished one: its card then says the step it reached of its total.
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.core.atomic import atomic_write_text
from zoo.core.errors import UserError
from zoo.core.yamlio import dump_yaml, read_yaml_file
from zoo.runs.folders import Run, open_run

CARD_FILE = "card.yml"


def pretrained_root() -> Path:
    return Path(str(resources.files("zoo").joinpath("pretrained")))


def agent_name(algo: str, game: str) -> str:
    return f"{algo}-{game}"


def shipped_agents(root: Path | None = None) -> dict[str, Path]:
    """Name -> folder of every agent shipped in the package."""
    root = root or pretrained_root()
    if not root.is_dir():
        return {}
    return {
        folder.name: folder
        for folder in sorted(root.iterdir())
        if (folder / CARD_FILE).is_file() and Run(folder).final_model.is_file()
    }


def shipped_agent(name: str, root: Path | None = None) -> Run:
    """The shipped agent `name` as a run folder, or one line naming those there are."""
    agents = shipped_agents(root)
    by_lower = {key.lower(): folder for key, folder in agents.items()}
    folder = by_lower.get(name.lower())
    if folder is None:
        available = ", ".join(agents) or "none in this install"
        raise UserError(f"--pretrained {name}: no such shipped agent; shipped: {available}")
    return open_run(folder)


def read_card(run: Run) -> dict[str, Any]:
    card = read_yaml_file(run.path / CARD_FILE, what="model card")
    return card if isinstance(card, dict) else {}


def shipped_agent_for(algo: str, game: str, root: Path | None = None) -> Run | None:
    """The shipped agent of this algo and game, if the package has one."""
    folder = {k.lower(): v for k, v in shipped_agents(root).items()}.get(
        agent_name(algo, game).lower()
    )
    return open_run(folder) if folder is not None else None


def package_agent(
    run: Run,
    model_file: Path,
    destination: Path,
    evaluation: dict[str, Any],
    machine: dict[str, Any],
    command: str,
    steps: int,
) -> Path:
    """Write the agent folder: weights without optimizer state, run.yml, config.yml, card.
    `steps`: the agent steps the model trained, below the run's total for an unfinished run."""
    from zoo.algorithms.model_loading import load_model

    destination.mkdir(parents=True, exist_ok=True)
    model = load_model(model_file, device="cpu")
    policy = model.policy
    # A fresh optimizer holds no running statistics: the zip keeps only what plays.
    optimizer_class: Any = policy.optimizer_class
    policy.optimizer = optimizer_class(policy.parameters(), lr=1e-4, **policy.optimizer_kwargs)
    model.save(Run(destination).final_model)
    info = run.read_info()
    atomic_write_text(destination / "config.yml", run.config_file.read_text(encoding="utf-8"))
    shipped_info: dict[str, Any] = {
        key: info[key] for key in ("algo", "env", "seed", "versions") if key in info
    }
    shipped_info.update(status="finished", timesteps=steps, total_timesteps=steps)
    atomic_write_text(destination / "run.yml", dump_yaml(shipped_info))
    planned = int(info.get("total_timesteps") or steps)
    card: dict[str, Any] = {
        "name": destination.name,
        "algo": info.get("algo"),
        "env": info.get("env"),
        "seed": info.get("seed"),
        "steps": steps,
        "model": _model_text(run, model_file),
    }
    if steps < planned:
        card["planned_steps"] = planned
        card["unfinished"] = (
            f"trained {steps:,} of the run's {planned:,} steps; the run was stopped there, and "
            "re-running the command below resumes it"
        )
    card.update(
        {
            "evaluation": evaluation,
            "trained_on": machine,
            "packaged": datetime.now(timezone.utc).date().isoformat(),
            "reproduce": command,
            "settings": read_yaml_file(run.config_file),
        }
    )
    atomic_write_text(destination / CARD_FILE, dump_yaml(card))
    return destination


def main(argv: list[str] | None = None) -> int:
    """`python -m zoo.results.pretrained CELL_DIR [--name NAME]`: package a finished benchmark cell
    (its final model and its final evaluation from benchmark.yml) into zoo/pretrained/;
    with `--unfinished`, the newest checkpoint of a cell that has not reached its total,
    scored now over `--eval-games` whole games as a finished cell is."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m zoo.results.pretrained")
    parser.add_argument("cell", type=Path, help="a zoo benchmark cell folder")
    parser.add_argument("--name", help="agent name (default: <algo>-<Game>)")
    parser.add_argument("--into", type=Path, default=pretrained_root())
    parser.add_argument("--unfinished", action="store_true",
                        help="package the newest checkpoint of a cell short of its total")  # fmt: skip
    parser.add_argument("--eval-games", type=int, default=30, metavar="N",
                        help="whole games that score an --unfinished cell (default 30)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.eval_games < 1:
            raise UserError(f"--eval-games {args.eval_games}: give at least 1 game")
        destination = _package_cell(args.cell, args.into, args.name, args.unfinished,
                                    args.eval_games)  # fmt: skip
    except UserError as error:
        print(f"error: {error}")
        return 2
    print(f"Packaged {destination}")
    return 0


def _package_cell(
    cell_dir: Path, into: Path, name: str | None, unfinished: bool, eval_games: int
) -> Path:
    import shlex

    from zoo.envs.stack import game_of
    from zoo.results.benchmark import read_cell_info

    run = open_run(cell_dir)
    info = run.read_info()
    cell = read_cell_info(run.path)
    finished = info.get("status") == "finished"
    if finished and unfinished:
        raise UserError(f"{run.path}: a finished cell is packaged without --unfinished")
    if not finished and not unfinished:
        raise UserError(
            f"{run.path}: not finished ({int(info.get('timesteps') or 0):,} of "
            f"{int(info.get('total_timesteps') or 0):,} steps); finish it with the same "
            "zoo benchmark command, or add --unfinished to package its newest checkpoint"
        )
    if finished:
        model_file, steps = run.final_model, int(info.get("timesteps") or 0)
        evaluation = _finished_evaluation(run.path, cell)
    else:
        model_file, steps, evaluation = _checkpoint_evaluation(run, eval_games)
    agent = name or agent_name(str(info["algo"]), game_of(str(info["env"])))
    grid = read_yaml_file(run.path.parent / "grid.yml", what="benchmark grid file")
    command = _benchmark_command(grid.get("grid", {}), shlex.join)
    machine = dict(cell.get("machine") or {})
    return package_agent(run, model_file, into / agent, evaluation, machine, command, steps)


def _finished_evaluation(cell_dir: Path, cell: dict[str, Any]) -> dict[str, Any]:
    evaluation = cell.get("final_evaluation")
    if not isinstance(evaluation, dict):
        raise UserError(f"{cell_dir}: finished but not evaluated; re-run its zoo benchmark command")
    final = {"games": evaluation["games"], "seeds": evaluation["seeds"]}
    final.update(evaluation.get("final", {}))
    return final


def _checkpoint_evaluation(run: Run, eval_games: int) -> tuple[Path, int, dict[str, Any]]:
    """The newest complete checkpoint, its step, and its score over whole games now."""
    from zoo.results.benchmark import evaluate_model, final_evaluation_seeds
    from zoo.results.enjoy import run_config
    from zoo.runs.checkpoints import newest_checkpoint

    checkpoint, _ = newest_checkpoint(run.checkpoints_dir)
    if checkpoint is None:
        raise UserError(f"{run.path}: no complete checkpoint to package")
    seeds = final_evaluation_seeds(eval_games)
    scores = evaluate_model(checkpoint.model_file, run_config(run), seeds, print,
                            f"checkpoint of step {checkpoint.step:,}")  # fmt: skip
    return checkpoint.model_file, checkpoint.step, {"games": eval_games, "seeds": seeds, **scores}


def _model_text(run: Run, model_file: Path) -> str:
    if model_file.parent.parent == run.checkpoints_dir:
        return f"the newest checkpoint of the run ({model_file.parent.name})"
    return f"{model_file.name} of the run"


def _benchmark_command(grid: dict[str, Any], join: Any) -> str:
    words = ["zoo", "benchmark", "--algos", *grid.get("algos", []), "--envs", *grid.get("envs", [])]
    words += ["--seeds", *map(str, grid.get("seeds", []))]
    if grid.get("preset"):
        words += ["--preset", grid["preset"]]
    for override in grid.get("set", []):
        words += ["--set", override]
    if grid.get("timesteps"):
        words += ["-n", str(grid["timesteps"])]
    return str(join(words))


if __name__ == "__main__":
    raise SystemExit(main())
