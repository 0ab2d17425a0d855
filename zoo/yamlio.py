"""YAML reading and writing: safe loading only, with YAML 1.2 floats such as `1e-4`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import UserError
from zoo.textfiles import read_text_file


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` and `5E6` as floats (YAML 1.1 wants a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml_text(text: str, origin: str) -> Any:
    """Parse YAML text; a syntax error becomes one line naming `origin` and the position."""
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{origin}: invalid YAML{where}: {problem}") from None


def read_yaml_file(path: Path, what: str = "hyperparameter file") -> Any:
    """Read a YAML file, turning a missing, unreadable or oversized file into a UserError."""
    return parse_yaml_text(read_text_file(path, what), str(path))


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
