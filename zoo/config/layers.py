"""Where configuration layers come from: the shipped hyperparams/ files and presets, a
user's YAML file (flat, or in sections per env kind and env) and `--set KEY=VALUE`. A `Layer`
keeps its origin, so every error names the file and section a value came from."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.core.errors import UserError
from zoo.core.yamlio import parse_yaml_text, read_yaml_file
from zoo.envs.stack import EnvSpec, resolve_env
from zoo.schema.fields import Schema
from zoo.schema.keys import RENAMED_KEYS, SCHEMAS

GENERIC_SECTIONS = ("default", "atari", "atari_ram")


@dataclass(frozen=True)
class Layer:
    """One source of hyperparameters and where it came from, for error messages."""

    origin: str
    values: Mapping[str, Any]


def shipped_hyperparams_file(name: str) -> Path:
    """A YAML file shipped in the top-level `hyperparams/` (installed as zoo.hyperparams)."""
    in_repo = Path(__file__).resolve().parents[2] / "hyperparams" / f"{name}.yml"
    if in_repo.is_file():
        return in_repo
    return Path(str(resources.files("zoo.hyperparams").joinpath(f"{name}.yml")))


def load_presets() -> dict[str, Any]:
    presets = read_yaml_file(shipped_hyperparams_file("presets"), what="presets file")
    return presets if isinstance(presets, dict) else {}


def preset_algo(name: str) -> str:
    """The algo a named preset is for."""
    presets = load_presets()
    if name not in presets:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(presets)}")
    return str(presets[name].get("algo"))


def preset_layer(name: str, algo: str) -> Layer:
    """The hyperparameters of a named preset from hyperparams/presets.yml."""
    presets = load_presets()
    if name not in presets:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(presets)}")
    preset = presets[name]
    if preset.get("algo") != algo:
        raise UserError(f"preset {name!r} is for --algo {preset.get('algo')}, not {algo}")
    return Layer(
        f"{shipped_hyperparams_file('presets')}, preset {name!r}", preset.get("hyperparams") or {}
    )


def file_layers(path: Path, env: EnvSpec, schema: Schema) -> Iterable[Layer]:
    """The layers one YAML file contributes for `env`: a flat file is one layer, a
    sectioned file gives its `default`, `atari`/`atari_ram` and env sections in that order."""
    return file_data_layers(path, read_yaml_file(path), env, schema)


def file_data_layers(path: Path, data: Any, env: EnvSpec, schema: Schema) -> list[Layer]:
    if data is None:
        return []
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: expected a mapping of sections or hyperparameters, got {type(data).__name__}"
        )
    if any(key in schema.fields or key in RENAMED_KEYS for key in data):
        sections = [key for key in data if key in GENERIC_SECTIONS]
        if sections:
            raise UserError(
                f"{path}: mixes hyperparameters with sections ({', '.join(sections)}); "
                "use either a flat mapping or sections only"
            )
        return [Layer(str(path), data)]
    env_sections = _sections_for(path, data, env)
    generic = [name for name in ("default", env.kind) if name in data]
    return [_section_layer(path, data, name) for name in (*generic, *env_sections)]


def _sections_for(path: Path, data: Mapping[str, Any], env: EnvSpec) -> list[str]:
    matching = []
    for name in data:
        if name in GENERIC_SECTIONS:
            continue
        try:
            resolved = resolve_env(str(name))
        except UserError:
            close = difflib.get_close_matches(
                str(name), [*GENERIC_SECTIONS, *SCHEMAS["dqn"].fields], n=1
            )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(
                f"{path}: section {name!r} is not a known env, nor one of "
                f"{', '.join(GENERIC_SECTIONS)}{hint}"
            ) from None
        if resolved.name == env.name:
            matching.append(name)
    return matching


def _section_layer(path: Path, data: Mapping[str, Any], name: str) -> Layer:
    values = data[name]
    origin = f"{path}, section {name!r}"
    if values is None:
        return Layer(origin, {})
    if not isinstance(values, dict):
        raise UserError(
            f"{origin}: expected a mapping of hyperparameters, got {type(values).__name__}"
        )
    return Layer(origin, values)


def parse_set_argument(text: str) -> Layer:
    """`--set KEY=VALUE`: VALUE is a YAML scalar or flow mapping; KEY may be dotted
    (`policy_kwargs.net_arch=[64, 64]`)."""
    origin = f"--set {text}"
    key, separator, raw_value = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise UserError(f"{origin}: expected KEY=VALUE, e.g. --set learning_rate=1e-4")
    value = parse_yaml_text(raw_value, origin) if raw_value.strip() else None
    for part in reversed(key.split(".")[1:]):
        value = {part: value}
    return Layer(origin, {key.split(".")[0]: value})
