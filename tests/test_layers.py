"""The package layering of docs/ARCHITECTURE.md, checked over the import graph: a package
imports only itself and the packages below it, so no two packages import each other, and no
module is over the length a reader takes in at once."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parent.parent / "zoo"
ARCHITECTURE = ZOO.parent / "docs" / "ARCHITECTURE.md"

# Lowest first. A top-level module (cli, __main__) sits above every package; zoo/__init__.py
# (the package root) may use `core` only.
LAYERS = (
    "core",
    "schema",
    "replay",
    "envs",
    "algorithms",
    "config",
    "runs",
    "training",
    "results",
    "tune",
    "cluster",
    "commands",
)
MAX_MODULE_LINES = 460


def module_name(path: Path) -> str:
    parts = path.relative_to(ZOO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def zoo_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ZOO.rglob("*.py"))}


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every zoo module `path` imports, at the top or inside a function (both are a
    dependency of the code), as (line, dotted name)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from zoo.results import atari100k` imports the module zoo.results.atari100k.
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name == "zoo" or name.startswith("zoo."):
                yield node.lineno, name


def layer_of(module: str) -> int:
    """The index of the module's layer in LAYERS (the top-level modules: above all)."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the package root
    if parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return len(LAYERS)


def real_module(name: str, modules: dict[str, Path]) -> str | None:
    """The zoo module a dotted import name resolves to (a name imported from a module
    resolves to that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def upward_imports() -> list[str]:
    modules = zoo_modules()
    found = []
    for module, path in modules.items():
        for line, name in imported_modules(path):
            target = real_module(name, modules)
            if target is None or target == "zoo":
                continue
            own, theirs = layer_of(module), layer_of(target)
            allowed = theirs <= LAYERS.index("core") if own == -1 else theirs <= own
            if not allowed:
                found.append(f"{path.relative_to(ZOO.parent)}:{line} imports {target}")
    return sorted(set(found))


def test_no_package_imports_one_above_it() -> None:
    assert upward_imports() == []


def test_every_package_has_a_layer_and_a_docstring() -> None:
    packages = {path.parent.name for path in ZOO.glob("*/__init__.py")}
    assert packages == set(LAYERS)
    for name in LAYERS:
        docstring = ast.get_docstring(ast.parse((ZOO / name / "__init__.py").read_text()))
        assert docstring, f"zoo/{name}/__init__.py says what the package owns"


def test_the_architecture_page_draws_the_same_layers() -> None:
    """docs/ARCHITECTURE.md lists the packages in layer order (lowest first) in its table."""
    listed = re.findall(r"^\| `zoo/(\w+)/` \|", ARCHITECTURE.read_text(), flags=re.M)
    assert tuple(listed) == LAYERS


@pytest.mark.parametrize("module", sorted(zoo_modules()))
def test_no_module_is_too_long_to_read_at_once(module: str) -> None:
    lines = zoo_modules()[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines; split it by what its parts own"


def test_the_check_finds_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph check is not vacuous: a module of `core` importing `training` is found."""
    fake = tmp_path / "zoo"
    (fake / "core").mkdir(parents=True)
    (fake / "training").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "training" / "__init__.py").write_text("")
    (fake / "training" / "train.py").write_text("X = 1\n")
    (fake / "core" / "errors.py").write_text("def f():\n    from zoo.training.train import X\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ZOO"]), "ZOO", fake)
    assert upward_imports() == ["zoo/core/errors.py:2 imports zoo.training.train"]
