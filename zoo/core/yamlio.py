"""YAML reading and writing: safe loading only, with YAML 1.2 floats such as `1e-4`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from zoo.core.errors import UserError
from zoo.core.textfiles import read_text_file


class Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` and `5E6` as floats (YAML 1.1 wants a dot)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# Values a document may expand to through its aliases: hyperparameter files hold hundreds;
# a few lines of nested aliases ("billion laughs") expand to billions.
MAX_EXPANDED_VALUES = 100_000


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    """A mapping whose keys are unique: a repeated key or section would silently win."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults`: the merged keys may be overridden in this mapping
        if not isinstance(key_node, yaml.ScalarNode):
            # `? [a, b] : 1`: a list or mapping as a key, which no setting has.
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain name, not a list or mapping", key_node.start_mark
            )
        key = loader.construct_object(key_node)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values `node` stands for once every alias is expanded (each node counted once)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias counts once
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


def parse_yaml_text(text: str, origin: str, loader: type[Loader] = Loader) -> Any:
    """Parse YAML text; a syntax error, a duplicate key or aliases that expand beyond
    reason become one line naming `origin` (and the position where there is one)."""
    try:
        reader = loader(text)
        try:
            node = reader.get_single_node()
            if node is None:
                return None
            expanded = _expanded_size(node, {})
            if expanded > MAX_EXPANDED_VALUES:
                raise UserError(
                    f"{origin}: its aliases expand to {expanded:,} values (at most "
                    f"{MAX_EXPANDED_VALUES:,}); write the values out"
                )
            return reader.construct_document(node)
        finally:
            reader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{origin}: invalid YAML{where}: {problem}") from None


def read_yaml_file(
    path: Path, what: str = "hyperparameter file", loader: type[Loader] = Loader
) -> Any:
    """Read a YAML file, turning a missing, unreadable or oversized file into a UserError."""
    return parse_yaml_text(read_text_file(path, what), str(path), loader)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
