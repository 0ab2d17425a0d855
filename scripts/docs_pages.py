"""The generated pages of the documentation site, written while `mkdocs build` runs
(mkdocs-gen-files): the command reference, the API pages of every package and the result
pages of every benchmark cell and shipped agent, all from what the repository holds now."""

from __future__ import annotations

import ast
import csv
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mkdocs_gen_files
import yaml

from zoo.cli import build_parser
from zoo.commands.reference import command_reference
from zoo.results.report import human_normalized, reference_table

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PACKAGE = REPO / "zoo"
PRETRAINED = PACKAGE / "pretrained"
ATARI100K_ROWS = REPO / "benchmarks" / "results" / "atari100k"
# Evaluation games end at this many emulator frames (a stuck agent); such games are named.
FRAME_CAP = 108_000


def write(path: str, text: str) -> None:
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(text)


# --- Reference -------------------------------------------------------------------------------


def api_pages() -> list[str]:
    """One page per package of zoo with the API of each of its public modules."""
    packages = sorted(p.parent for p in PACKAGE.glob("*/__init__.py"))
    index = [
        "# API\n\n",
        "zoo's packages and their public modules, from their docstrings and signatures. How they\n",
        "fit together: [Architecture](../../ARCHITECTURE.md).\n\n",
        "| package | what it owns |\n|---|---|\n",
        f"| [`zoo`](zoo.md) | {first_line(docstring_of(PACKAGE / '__init__.py'))} |\n",
    ]
    write("reference/api/zoo.md", api_page("zoo", [PACKAGE / "cli.py"], PACKAGE / "__init__.py"))
    for package in packages:
        name = f"zoo.{package.name}"
        modules = sorted(m for m in package.glob("*.py") if not m.name.startswith("_"))
        write(f"reference/api/{package.name}.md", api_page(name, modules, package / "__init__.py"))
        summary = first_line(docstring_of(package / "__init__.py"))
        index.append(f"| [`{name}`]({package.name}.md) | {summary} |\n")
    write("reference/api/index.md", "".join(index))
    return ["zoo", *(p.name for p in packages)]


def api_page(name: str, modules: Sequence[Path], init: Path) -> str:
    lines = [f"# `{name}`\n\n", docstring_of(init) + "\n\n"]
    for module in modules:
        dotted = ".".join(module.relative_to(REPO).with_suffix("").parts)
        lines.append(f"::: {dotted}\n\n")
    return "".join(lines)


def docstring_of(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def first_line(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split())


# --- Results ---------------------------------------------------------------------------------


def load_cards() -> dict[str, dict[str, Any]]:
    cards = {}
    for path in sorted(PRETRAINED.glob("*/card.yml")):
        cards[path.parent.name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return cards


def curve_of(name: str) -> str | None:
    """The page-relative path of an agent's learning curve, if one is committed."""
    in_docs = DOCS / f"{name.lower()}-curve.png"
    if in_docs.exists():
        return f"../{in_docs.name}"
    for image in sorted((PRETRAINED / name).glob("*.png")):
        target = f"results/{name}-{image.name}"
        with mkdocs_gen_files.open(target, "wb") as copy:
            copy.write(image.read_bytes())
        return f"{name}-{image.name}"
    return None


def card_page(name: str, card: Mapping[str, Any]) -> str:
    references = reference_table()
    game = str(card["env"]).removesuffix("NoFrameskip-v4")
    steps = f"{card['steps']:,}"
    if card.get("planned_steps"):
        steps += f" of {card['planned_steps']:,} planned"
    machine = card.get("trained_on", {})
    lines = [
        f"# {name}\n\n",
        f"The agent shipped in `zoo/pretrained/{name}/`, generated from its card (`card.yml`).\n\n",
        f"```bash\nzoo enjoy --pretrained {name}\n```\n\n",
        "| | |\n|---|---|\n",
        f"| algorithm | {card['algo']} |\n",
        f"| env | `{card['env']}` |\n",
        f"| seed | {card['seed']} |\n",
        f"| steps | {steps} |\n",
        f"| model | {card['model']} |\n",
        f"| trained on | {', '.join(f'{k} {v}' for k, v in machine.items())} |\n",
        f"| packaged | {card.get('packaged', '')} |\n",
        f"| reproduce | `{card['reproduce']}` |\n",
    ]
    if card.get("unfinished"):
        lines.append(f'\n!!! note "Unfinished"\n    {" ".join(str(card["unfinished"]).split())}.\n')
    evaluation = card["evaluation"]
    lines += [
        f"\n## Score over {evaluation['games']} whole games\n\n",
        f"All lives, unclipped score, game i with seed i (seeds {seed_text(evaluation['seeds'])}).\n\n",
        "| actions | mean ± std | median | min-max | HNS | games at the frame cap | seconds |\n",
        "|---|---|---|---|---|---|---|\n",
    ]
    modes = [mode for mode in ("sampled", "greedy") if mode in evaluation]
    for mode in modes:
        scores = evaluation[mode]["scores"]
        capped = [
            s for s, n in zip(scores, evaluation[mode]["lengths"], strict=True) if n >= FRAME_CAP
        ]
        reference = references.get(game, {})
        random, human = reference.get("Random"), reference.get("Human")
        hns = ""
        if random is not None and human is not None:
            hns = f"{human_normalized(statistics.fmean(scores), random, human):.0f}%"
        lines.append(
            f"| {mode} | {statistics.fmean(scores):.1f} ± {statistics.pstdev(scores):.1f} "
            f"| {statistics.median(scores):g} | {min(scores):g}-{max(scores):g} | {hns} "
            f"| {len(capped)}{capped_text(capped)} | {evaluation[mode].get('seconds', '')} |\n"
        )
    curve = curve_of(name)
    if curve:
        lines.append(f"\n## Learning curve\n\n![{name} learning curve]({curve})\n")
    lines.append("\n## Every game\n\n| game seed | " + " | ".join(modes) + " |\n")
    lines.append("|---|" + "---|" * len(modes) + "\n")
    for i, seed in enumerate(evaluation["seeds"]):
        row = [f"{evaluation[mode]['scores'][i]:g}" for mode in modes]
        lines.append(f"| {seed} | " + " | ".join(row) + " |\n")
    settings = yaml.safe_dump(card["settings"], sort_keys=False)
    lines.append(f"\n## Settings\n\n```yaml\n{settings}```\n")
    return "".join(lines)


def seed_text(seeds: Sequence[int]) -> str:
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(seed) for seed in seeds)


def capped_text(capped: Sequence[float]) -> str:
    return f" (scores {', '.join(f'{s:g}' for s in sorted(set(capped)))})" if capped else ""


def atari100k_page(cards: Mapping[str, Mapping[str, Any]]) -> str:
    table = (ATARI100K_ROWS / "atari100k.md").read_text(encoding="utf-8")
    lines = [
        table.rstrip() + "\n\n",
        "## Every result row\n\n",
        "One row per cell, as kept in `benchmarks/results/atari100k/` (each a CSV file of its own;\n",
        "the table above is computed from them by `zoo benchmark --suite atari100k --report`).\n",
    ]
    for path in sorted(ATARI100K_ROWS.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as rows:
            for row in csv.DictReader(rows):
                lines.append(atari100k_cell(path, row, cards))
    return "".join(lines)


def atari100k_cell(
    path: Path, row: Mapping[str, str], cards: Mapping[str, Mapping[str, Any]]
) -> str:
    name = f"{row['agent']}-{row['game']}"
    lines = [
        f"\n### {row['agent']}, {row['game']}, seed {row['seed']}\n\n",
        f"`{path.relative_to(REPO)}`\n\n",
        "| " + " | ".join(row) + " |\n",
        "|" + "---|" * len(row) + "\n",
        "| " + " | ".join(row.values()) + " |\n",
    ]
    card = cards.get(name)
    if card and str(card["seed"]) == row["seed"] and str(card["steps"]) == row["steps"]:
        lines.append(f"\nShipped as [{name}]({name}.md): `zoo enjoy --pretrained {name}`.\n")
    curve = path.with_suffix(".png")
    if curve.exists():
        target = f"results/{curve.name}"
        with mkdocs_gen_files.open(target, "wb") as copy:
            copy.write(curve.read_bytes())
        lines.append(f"\n![{name} learning curve]({curve.name})\n")
    return "".join(lines)


def result_pages() -> None:
    cards = load_cards()
    write("results/atari100k.md", atari100k_page(cards))
    for name, card in cards.items():
        write(f"results/{name}.md", card_page(name, card))
    listing = ["\n## Every result page\n\n", "- [Atari-100k](atari100k.md): every kept row\n"]
    listing += [f"- [{name}]({name}.md): shipped agent, its card\n" for name in cards]
    with mkdocs_gen_files.open("results/index.md", "a") as index:
        index.write("".join(listing))


write("reference/commands.md", command_reference(build_parser()))
api_pages()
result_pages()
