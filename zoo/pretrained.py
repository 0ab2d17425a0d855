"""Agents shipped inside the package: `zoo enjoy --pretrained NAME` plays them offline.

Each agent is a small run folder in `zoo/pretrained/<algo>-<Game>/`: `run.yml` and
`config.yml` as `zoo train` writes them, `final_model.zip` with the policy's float32 weights
(the optimizer's running statistics left out) and `card.yml`, the model card: algo, every
setting, steps, the score over whole games with their seeds, date, machine and the command
that reproduces it. `package_agent` makes one from a finished run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_write_text
from zoo.errors import UserError
from zoo.runs import FINAL_MODEL, Run, open_run
from zoo.yamlio import dump_yaml, read_yaml_file

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
        if (folder / CARD_FILE).is_file() and (folder / FINAL_MODEL).is_file()
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
) -> Path:
    """Write the agent folder: weights without optimizer state, run.yml, config.yml, card."""
    from zoo.model_loading import load_model

    destination.mkdir(parents=True, exist_ok=True)
    model = load_model(model_file, device="cpu")
    policy = model.policy
    # A fresh optimizer holds no running statistics: the zip keeps only what plays.
    optimizer_class: Any = policy.optimizer_class
    policy.optimizer = optimizer_class(policy.parameters(), lr=1e-4, **policy.optimizer_kwargs)
    model.save(destination / FINAL_MODEL)
    info = run.read_info()
    atomic_write_text(destination / "config.yml", run.config_file.read_text(encoding="utf-8"))
    shipped_info: dict[str, Any] = {
        key: info[key] for key in ("algo", "env", "seed", "timesteps", "versions") if key in info
    }
    shipped_info.update(status="finished", total_timesteps=info.get("timesteps"))
    atomic_write_text(destination / "run.yml", dump_yaml(shipped_info))
    card = {
        "name": destination.name,
        "algo": info.get("algo"),
        "env": info.get("env"),
        "seed": info.get("seed"),
        "steps": info.get("timesteps"),
        "model": f"{model_file.name} of the run (the final model unless it says best_model)",
        "evaluation": evaluation,
        "trained_on": machine,
        "packaged": datetime.now(timezone.utc).date().isoformat(),
        "reproduce": command,
        "settings": read_yaml_file(run.config_file),
    }
    atomic_write_text(destination / CARD_FILE, dump_yaml(card))
    return destination


def main(argv: list[str] | None = None) -> int:
    """`python -m zoo.pretrained CELL_DIR [--name NAME]`: package a finished benchmark cell
    (its final model and its final evaluation from benchmark.yml) into zoo/pretrained/."""
    import argparse
    import shlex

    from zoo.benchmark import read_cell_info
    from zoo.report import game_of

    parser = argparse.ArgumentParser(prog="python -m zoo.pretrained")
    parser.add_argument("cell", type=Path, help="a finished zoo benchmark cell folder")
    parser.add_argument("--name", help="agent name (default: <algo>-<Game>)")
    parser.add_argument("--into", type=Path, default=Path(__file__).parent / "pretrained")
    args = parser.parse_args(argv)
    try:
        run = open_run(args.cell)
        info = run.read_info()
        cell = read_cell_info(run.path)
        evaluation = cell.get("final_evaluation")
        if info.get("status") != "finished" or not isinstance(evaluation, dict):
            raise UserError(f"{run.path}: not a finished, evaluated benchmark cell")
        name = args.name or agent_name(str(info["algo"]), game_of(str(info["env"])))
        final = {"games": evaluation["games"], "seeds": evaluation["seeds"]}
        final.update(evaluation.get("final", {}))
        grid = read_yaml_file(run.path.parent / "grid.yml", what="benchmark grid file")
        command = _benchmark_command(grid.get("grid", {}), shlex.join)
        destination = package_agent(
            run, run.final_model, args.into / name, final, dict(cell.get("machine") or {}), command
        )
    except UserError as error:
        print(f"error: {error}")
        return 2
    print(f"Packaged {destination}")
    return 0


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
