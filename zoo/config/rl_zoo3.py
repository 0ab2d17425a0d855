"""rl-baselines3-zoo (rl_zoo3) formats in zoo's terms: its hyperparameter files, its saved
`config.yml` / `args.yml`; its run folders are read by zoo/runs/rl_zoo3_runs.py.

Hyperparameters. A file is in rl_zoo3's format when it carries one of its markers: the
`!!python/object/apply:collections.OrderedDict` tag of a saved config.yml, a `!!float` tag,
a `lin_X` schedule, a Python string for policy_kwargs (`"dict(...)"`), or one of the keys
only rl_zoo3 has (env_wrapper, vec_env_wrapper, normalize, callback, monitor_kwargs). Such a
file means rl_zoo3's semantics: one section applies (the env's own, else `atari` for pixel
games, else `default`), zoo's Q-learning extensions stay off underneath it
(`PLAIN_PRESETS`), a section that names AtariWrapper trains on it (`backend_layer`), and
`train_freq` is converted from rl_zoo3's vector steps to zoo's agent steps. Python strings
are parsed with `ast`, never evaluated; each class name must be in zoo's registry.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zoo.algorithms import registry
from zoo.core.errors import UserError
from zoo.core.textfiles import read_text_file
from zoo.core.yamlio import Loader, parse_yaml_text
from zoo.envs.stack import EnvSpec, resolve_env

ORDERED_DICT_TAG = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict"
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"
# AtariWrapper's keyword arguments, as zoo's preprocessing keys (env_kwargs for sticky actions).
ATARI_WRAPPER_KWARGS: Mapping[str, str] = {
    "noop_max": "noop_max",
    "frame_skip": "frame_skip",
    "screen_size": "screen_size",
    "terminal_on_life_loss": "terminal_on_life_loss",
    "clip_reward": "clip_reward",
    "action_repeat_probability": "env_kwargs.repeat_action_probability",
}
# Keys rl_zoo3 turns into Python objects with eval(); zoo parses them with ast.
PYTHON_STRING_KEYS = ("policy_kwargs", "replay_buffer_kwargs")
# Keys whose `lin_X` string rl_zoo3 makes a linear schedule from X to 0.
LIN_STRING_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
# Keys only rl_zoo3 reads (and what zoo does instead, for the error when they ask for more).
RL_ZOO3_ONLY_KEYS: Mapping[str, str] = {
    "env_wrapper": "only AtariWrapper, which is zoo's Atari preprocessing",
    "vec_env_wrapper": "zoo stacks frames with frame_stack",
    "normalize": "zoo has no VecNormalize; leave it out or set it false",
    "callback": "zoo's callbacks are its evaluation and checkpoints",
    "monitor_kwargs": "zoo's Monitor records every game",
}
# rl_zoo3's algorithm is plain SB3's: zoo's own defaults for these algos switch on
# extensions (Double, Dueling, n-step), which this preset switches off again.
PLAIN_PRESETS: Mapping[str, str] = {"dqn": "sb3_benchmark"}
SECTION_NAMES = ("default", "atari")

_notes_said: set[str] = set()


def note(text: str) -> None:
    """One line on stderr, once per process (a config may be built many times)."""
    if text not in _notes_said:
        _notes_said.add(text)
        print(f"note: {text}", file=sys.stderr)


# --- reading -------------------------------------------------------------------------------


class RlZoo3Loader(Loader):
    """zoo's safe loader plus rl_zoo3's OrderedDict tag, built as a plain dict from its pairs."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(
            None, None, "an OrderedDict tag without its list of pairs", node.start_mark
        )
    arguments = loader.construct_sequence(node, deep=True)
    pairs = arguments[0] if len(arguments) == 1 else None
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise yaml.constructor.ConstructorError(
            None, None, "an OrderedDict tag whose value is not a list of pairs", node.start_mark
        )
    return {key: value for key, value in pairs}


def _python_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    return list(loader.construct_sequence(node, deep=True))  # type: ignore[arg-type]


RlZoo3Loader.add_constructor(ORDERED_DICT_TAG, _ordered_dict)
RlZoo3Loader.add_constructor("tag:yaml.org,2002:python/tuple", _python_tuple)


@dataclass(frozen=True)
class HyperparamsFile:
    """A hyperparameter file as read, and whether it is in rl_zoo3's format."""

    path: Path
    data: Any
    rl_zoo3: bool


def read_hyperparams_file(path: Path, what: str = "hyperparameter file") -> HyperparamsFile:
    text = read_text_file(path, what)
    data = parse_yaml_text(text, str(path), RlZoo3Loader)
    tagged = "!!python/object/apply:collections.OrderedDict" in text or "!!float" in text
    return HyperparamsFile(path, data, tagged or _has_markers(data))


def _has_markers(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    mappings = [data, *(value for value in data.values() if isinstance(value, dict))]
    for values in mappings:
        for key, value in values.items():
            if key in RL_ZOO3_ONLY_KEYS:
                return True
            if key in LIN_STRING_KEYS and isinstance(value, str) and value.startswith("lin_"):
                return True
            if key in PYTHON_STRING_KEYS and isinstance(value, str):
                return True
    return False


# --- hyperparameters -----------------------------------------------------------------------


def hyperparams_layer(file: HyperparamsFile, env: EnvSpec) -> tuple[str, dict[str, Any]]:
    """(origin, zoo hyperparameters) of the one section rl_zoo3 would use for `env`."""
    origin, values = _section(file, env)
    return origin, translate(values, env, origin)


def backend_layer(file: HyperparamsFile, env: EnvSpec) -> tuple[str, dict[str, Any]] | None:
    """(origin, {vec_env: sb3}) where the section asks for SB3's AtariWrapper: rl_zoo3 trains
    on it, and zoo's `ale` backend differs in details (FIRE and no-op order, gray palette,
    no hidden actions after a lost life). None where the section sets vec_env itself."""
    origin, values = _section(file, env)
    if env.kind != "atari" or "vec_env" in values or not _wrappers(values.get("env_wrapper")):
        return None
    return f"{origin}, key 'env_wrapper'", {"vec_env": "sb3"}


def backend_note(origin: str) -> str:
    """The start-up line for a run that trains on SB3's AtariWrapper because of `origin`."""
    return (
        f"{origin}: SB3's AtariWrapper, so training runs on it (vec_env: sb3) as under "
        "rl_zoo3; --vec-env ale trains on zoo's faster C++ backend"
    )


def _wrappers(value: Any) -> list[Any]:
    entries = value if isinstance(value, list) else [value]
    return [entry for entry in entries if entry is not None]


def _section(file: HyperparamsFile, env: EnvSpec) -> tuple[str, Mapping[str, Any]]:
    """(origin, rl_zoo3 hyperparameters) of the one section rl_zoo3 would use for `env`."""
    data = file.data
    if data is None:
        return str(file.path), {}
    if not isinstance(data, dict):
        raise UserError(
            f"{file.path}: expected a mapping of sections or hyperparameters, "
            f"got {type(data).__name__}"
        )
    if not all(isinstance(value, dict) or value is None for value in data.values()):
        return f"{file.path} (rl_zoo3 format)", data
    name = pick_section(file.path, data, env)
    return f"{file.path}, section {name!r} (rl_zoo3 format)", data[name] or {}


def pick_section(path: Path, data: Mapping[str, Any], env: EnvSpec) -> str:
    """rl_zoo3's choice: the env's own section, else `atari` for pixel games, else `default`.
    Sections for envs not registered here are skipped with one note naming them."""
    unknown, own = [], None
    for name in data:
        if name in SECTION_NAMES:
            continue
        try:
            resolved = resolve_env(str(name))
        except UserError:
            unknown.append(str(name))
            continue
        if resolved.name == env.name and own is None:
            own = str(name)
    if unknown:
        note(f"{path}: skipped the sections of envs zoo does not know: {', '.join(unknown)}")
    if own is not None:
        return own
    if env.kind == "atari" and "atari" in data:
        return "atari"
    if "default" in data:
        return "default"
    raise UserError(f"{path}: no section for {env.name}, and no atari or default section")


def translate(values: Mapping[str, Any], env: EnvSpec, origin: str) -> dict[str, Any]:
    """rl_zoo3 hyperparameters -> zoo's: schedules as data, Python strings parsed, AtariWrapper
    and frame_stack as preprocessing keys. Other keys pass on to zoo's validation."""
    result: dict[str, Any] = {}
    for key, value in values.items():
        if key == "env_wrapper":
            _merge(result, _env_wrapper(value, env, origin))
        elif key == "normalize" and value in (False, None):
            continue
        elif key in RL_ZOO3_ONLY_KEYS and key != "env_wrapper":
            if value is not None:
                raise UserError(f"{origin}: key {key!r}: {RL_ZOO3_ONLY_KEYS[key]}")
        elif key in LIN_STRING_KEYS and isinstance(value, str):
            result[key] = linear_schedule(value, f"{origin}: key {key!r}")
        elif key in PYTHON_STRING_KEYS and isinstance(value, str):
            _merge(result, {key: python_kwargs(value, key, f"{origin}: key {key!r}")})
        else:
            _merge(result, {key: value})
    if "train_freq" in result:
        result["train_freq"] = agent_step_train_freq(result["train_freq"], result.get("n_envs", 1))
    return result


def agent_step_train_freq(train_freq: Any, n_envs: Any) -> Any:
    """rl_zoo3 passes `train_freq` to SB3, which counts it in vector steps of the file's
    n_envs (1 if it names none); zoo counts agent steps: F vector steps are F x n_envs.
    `[N, episode]`, and values zoo's validation will refuse, are left as they are."""
    if not _is_count(n_envs) or n_envs == 1:
        return train_freq
    if _is_count(train_freq):
        return int(train_freq) * int(n_envs)
    steps = isinstance(train_freq, list) and len(train_freq) == 2 and train_freq[1] == "step"
    if steps and _is_count(train_freq[0]):
        return [int(train_freq[0]) * int(n_envs), "step"]
    return train_freq


def _is_count(value: Any) -> bool:
    """A whole number >= 1 (YAML's `1e3` included)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and value >= 1 and float(value).is_integer()


def _merge(result: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value


def linear_schedule(text: str, where: str) -> dict[str, Any]:
    """`lin_2.5e-4`: rl_zoo3's linear decay from 2.5e-4 to 0 over the run."""
    prefix, _, number = text.partition("_")
    try:
        initial = float(number)
    except ValueError:
        initial = None
    if prefix != "lin" or initial is None:
        raise UserError(f"{where}: {text!r}: give a number or lin_<initial value>, e.g. lin_2.5e-4")
    return {"type": "linear", "initial": initial, "final": 0.0}


def _env_wrapper(value: Any, env: EnvSpec, origin: str) -> dict[str, Any]:
    where = f"{origin}: key 'env_wrapper'"
    result: dict[str, Any] = {}
    for entry in _wrappers(value):
        name, kwargs = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        if name not in (ATARI_WRAPPER, "AtariWrapper"):
            raise UserError(
                f"{where}: {name}: zoo applies no wrapper but AtariWrapper ({ATARI_WRAPPER})"
            )
        if env.kind != "atari":
            raise UserError(f"{where}: AtariWrapper is for Atari pixel games, not {env.name}")
        for argument, setting in (kwargs or {}).items():
            if argument not in ATARI_WRAPPER_KWARGS:
                raise UserError(
                    f"{where}: AtariWrapper takes no {argument!r}; zoo maps "
                    f"{', '.join(ATARI_WRAPPER_KWARGS)}"
                )
            key, _, inner = ATARI_WRAPPER_KWARGS[argument].partition(".")
            _merge(result, {key: {inner: setting}} if inner else {key: setting})
    return result


class _ClassName(str):
    """A (dotted) class name in a Python string, resolved through the registry later."""


def python_kwargs(text: str, key: str, where: str) -> dict[str, Any]:
    """`"dict(net_arch=[256, 256], activation_fn=nn.ReLU)"` as zoo's policy_kwargs: parsed
    with `ast` (never evaluated); classes become the names zoo's registry has for them."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise UserError(f"{where}: {text!r} is not Python ({error.msg})") from None
    value = _literal(tree.body, where)
    if not isinstance(value, dict):
        raise UserError(f"{where}: {text!r}: expected dict(...)")
    return _resolve_names(value, key, where)


def _literal(node: ast.expr, where: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, where)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item, where) for item in node.elts]
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return {k.value: _literal(v, where) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[union-attr]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(keyword.arg is not None for keyword in node.keywords)
    ):
        return {keyword.arg: _literal(keyword.value, where) for keyword in node.keywords}
    dotted = _dotted_name(node)
    if dotted is not None:
        return _ClassName(dotted)
    raise UserError(
        f"{where}: {ast.unparse(node)!r} is not a value zoo reads "
        "(numbers, strings, lists, dict(...) and class names)"
    )


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted_name(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


# Module prefixes rl_zoo3's files write before a class name (`nn.ReLU`, `th.optim.Adam`).
_MODULE_ALIASES = ("nn", "th.nn", "torch.nn", "optim", "th.optim", "torch.optim")


def _resolve_names(value: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for entry, item in value.items():
        if isinstance(item, _ClassName):
            table = registry.NAMED_POLICY_KWARGS.get(entry) if key == "policy_kwargs" else None
            if table is None:
                raise UserError(f"{where}: {entry}={item}: zoo takes a class name only for "
                                f"{', '.join(registry.NAMED_POLICY_KWARGS)}")  # fmt: skip
            resolved[entry] = _registry_name(item, entry, table, where)
        elif isinstance(item, dict):
            resolved[entry] = _resolve_names(item, "", where)
        elif isinstance(item, list) and any(isinstance(i, (_ClassName, dict)) for i in item):
            # SB3's old net_arch form [dict(pi=..., vf=...)] is its dict form in a list
            if entry == "net_arch" and len(item) == 1 and isinstance(item[0], dict):
                resolved[entry] = _resolve_names(item[0], "", where)
            else:
                raise UserError(f"{where}: {entry}: a list of names or mappings is not read")
        else:
            resolved[entry] = item
    return resolved


def _registry_name(name: str, entry: str, table: Mapping[str, Any], where: str) -> str:
    module, _, class_name = name.rpartition(".")
    for zoo_name, cls in table.items():
        if cls.__name__ == class_name and module in ("", *_MODULE_ALIASES, cls.__module__):
            return zoo_name
    known = ", ".join(cls.__name__ for cls in table.values())
    raise UserError(f"{where}: {entry}={name} is not in zoo's registry; it knows {known}")
