"""Load any model zip `zoo` saved, whatever the algorithm and DQN variant, with no flags;
rl_zoo3's and plain SB3's zips of the same algorithms too. Loading never unpickles.

SB3 stores the attributes of a model that JSON cannot hold (spaces, classes, schedules,
buffers of recent games) as cloudpickle bytes in the zip's `data`, and unpickling them runs
whatever code the zip names. SB3's `load(custom_objects=...)` skips every key it is given,
so zoo gives it every such entry, rebuilt without unpickling:

- the observation and action spaces: the env's, once they match the readable description
  SB3 writes beside them (or that description alone when there is no env);
- what SB3 recreates anyway (the last observation, the progress schedules of `_setup_model`):
  None;
- everything else (policy and buffer classes, policy_kwargs, zoo's and SB3's schedules,
  train_freq, the recent games' scores): decoded from its pickle opcodes with
  `pickletools.genops`, which only parses. Plain values, tuples, lists and dicts are read as
  they are; a class only when zoo's tables name it (`LOADABLE`), and only the few listed in
  `_BUILT` are constructed. A training schedule rl_zoo3 saved as a function is code: it is
  replaced by one that refuses to be called, so such a model plays but does not train.

A zip that needs anything else is refused with one line. The weights (`*.pth`) are read by
SB3 with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common import buffers
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from zoo.algorithms import registry
from zoo.algorithms.q_networks import NETWORKS
from zoo.algorithms.temporal_difference import REPLAY_BUFFER_CLASSES
from zoo.core.errors import UserError
from zoo.core.former_paths import current_module_path
from zoo.replay.prioritized import PrioritizedFrameReplayBuffer
from zoo.schema.schedules import Schedule

# The env id a zoo model was built for, saved with it (SB3 keeps every plain attribute).
TRAINED_ON = "trained_on"

ZIP_ERRORS = (zipfile.BadZipFile, ValueError, KeyError, EOFError, RuntimeError, OSError,
              pickle.UnpicklingError, UnicodeDecodeError)  # fmt: skip

# Entries SB3 recreates: the env's last observation (reset before training), the progress
# schedules `_setup_model` builds again from learning_rate and the exploration settings.
_RECREATED = frozenset(
    {"_last_obs", "_last_original_obs", "_last_episode_starts", "lr_schedule",
     "exploration_schedule"}
)  # fmt: skip
# Training schedules that SB3 also accepts as functions (rl_zoo3's `lin_` values).
_SCHEDULES = frozenset({"learning_rate", "clip_range", "clip_range_vf"})


def _name(cls: type) -> tuple[str, str]:
    return cls.__module__, cls.__qualname__


def _loadable_classes() -> dict[tuple[str, str], Any]:
    """Every class a zoo, rl_zoo3 or SB3 zip of zoo's algorithms may name, through zoo's
    tables: policies, networks, optimizers, activations, buffers, schedules."""
    algorithms: list[type[BaseAlgorithm]] = [*registry.ALGORITHMS.values(), DQN, QRDQN]
    classes: list[Any] = [
        *(policy for algorithm in algorithms for policy in algorithm.policy_aliases.values()),
        *registry.OPTIMIZERS.values(),
        *registry.ACTIVATIONS.values(),
        *registry.FEATURES_EXTRACTORS.values(),
        *NETWORKS.values(),
        *(cls for cls in REPLAY_BUFFER_CLASSES.values() if cls is not None),
        PrioritizedFrameReplayBuffer,
        buffers.ReplayBuffer,
        buffers.DictReplayBuffer,
        buffers.NStepReplayBuffer,
        buffers.RolloutBuffer,
        buffers.DictRolloutBuffer,
        *_BUILT,
        *_RECORDS,
    ]
    return {_name(cls): cls for cls in classes}


# Called with the decoded arguments: a deque of recent games, train_freq and its unit.
_BUILT: tuple[type, ...] = (collections.deque, TrainFreq, TrainFrequencyUnit)
# Made empty and given their saved attributes (pickle's NEWOBJ + BUILD): plain records.
_RECORDS: tuple[type, ...] = (Schedule, FloatSchedule, ConstantSchedule, LinearSchedule)
LOADABLE = _loadable_classes()


class NotDecodable(Exception):
    """A pickled entry that would need more than zoo's tables to rebuild."""


_LITERALS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
     "BININT", "BININT1", "BININT2", "LONG1", "INT", "BINFLOAT", "FLOAT"}
)  # fmt: skip
_IGNORED = frozenset({"PROTO", "FRAME"})


def decode_pickle(blob: bytes) -> Any:
    """The value of a pickle made only of literals, tuples, lists, dicts and the classes in
    LOADABLE, read opcode by opcode; nothing in it is imported or run."""
    reader = _PickleReader()
    for opcode, arg, _ in pickletools.genops(blob):
        if opcode.name == "STOP":
            return reader.result()
        if opcode.name in _IGNORED:
            continue
        if opcode.name in _LITERALS:
            reader.stack.append(arg)
            continue
        handler = _PickleReader.HANDLERS.get(opcode.name)
        if handler is None:
            raise NotDecodable(f"the pickle operation {opcode.name}")
        handler(reader, arg)
    raise NotDecodable("a pickle without its end")


class _PickleReader:
    """The stack, marks and memo of pickle's machine, for the operations listed in HANDLERS."""

    HANDLERS: ClassVar[dict[str, Callable[[_PickleReader, Any], None]]] = {}

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def result(self) -> Any:
        if len(self.stack) != 1 or self.marks:
            raise NotDecodable("a malformed pickle")
        return self.stack[0]

    def pop_mark(self) -> list[Any]:
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def pop_n(self, count: int) -> tuple[Any, ...]:
        if len(self.stack) < count:
            raise NotDecodable("a malformed pickle")
        items = tuple(self.stack[len(self.stack) - count :])
        del self.stack[len(self.stack) - count :]
        return items

    def top(self, kind: type | tuple[type, ...]) -> Any:
        return _as(self.stack[-1], kind)

    def append(self, items: Iterable[Any]) -> None:
        self.top((list, collections.deque)).extend(items)

    def push_global(self, module: Any, qualname: Any) -> None:
        # A zip saved before zoo's modules moved into packages names their former paths.
        cls = LOADABLE.get((current_module_path(str(module)), str(qualname)))
        if cls is None:
            raise NotDecodable(f"{module}.{qualname}")
        self.stack.append(cls)

    def call(self, newobj: bool) -> None:
        cls, args = self.pop_n(2)
        args = _as(args, tuple)
        if cls in _BUILT:
            self.stack.append(cls(*args))
        elif cls in _RECORDS and not args and newobj:
            self.stack.append(cls.__new__(cls))
        else:
            raise NotDecodable(f"a call of {getattr(cls, '__name__', cls)}")

    def build(self) -> None:
        state = _as(self.stack.pop(), dict)
        target = self.stack[-1]
        if not isinstance(target, _RECORDS) or not all(isinstance(k, str) for k in state):
            raise NotDecodable("the state of an object zoo does not rebuild")
        target.__dict__.update(state)


def _set_items(reader: _PickleReader, items: list[Any]) -> None:
    target = reader.top(dict)
    for key, value in zip(items[::2], items[1::2], strict=True):
        target[key] = value


_PickleReader.HANDLERS.update({
    "NONE": lambda r, _: r.stack.append(None),
    "NEWTRUE": lambda r, _: r.stack.append(True),
    "NEWFALSE": lambda r, _: r.stack.append(False),
    "MEMOIZE": lambda r, _: r.memo.__setitem__(len(r.memo), r.stack[-1]),
    "PUT": lambda r, arg: r.memo.__setitem__(int(arg), r.stack[-1]),
    "BINPUT": lambda r, arg: r.memo.__setitem__(int(arg), r.stack[-1]),
    "LONG_BINPUT": lambda r, arg: r.memo.__setitem__(int(arg), r.stack[-1]),
    "GET": lambda r, arg: r.stack.append(r.memo[int(arg)]),
    "BINGET": lambda r, arg: r.stack.append(r.memo[int(arg)]),
    "LONG_BINGET": lambda r, arg: r.stack.append(r.memo[int(arg)]),
    "MARK": lambda r, _: r.marks.append(len(r.stack)),
    "EMPTY_TUPLE": lambda r, _: r.stack.append(()),
    "TUPLE1": lambda r, _: r.stack.append(r.pop_n(1)),
    "TUPLE2": lambda r, _: r.stack.append(r.pop_n(2)),
    "TUPLE3": lambda r, _: r.stack.append(r.pop_n(3)),
    "TUPLE": lambda r, _: r.stack.append(tuple(r.pop_mark())),
    "EMPTY_LIST": lambda r, _: r.stack.append([]),
    "APPEND": lambda r, _: r.append(r.pop_n(1)),
    "APPENDS": lambda r, _: r.append(r.pop_mark()),
    "EMPTY_DICT": lambda r, _: r.stack.append({}),
    "SETITEM": lambda r, _: _set_items(r, list(r.pop_n(2))),
    "SETITEMS": lambda r, _: _set_items(r, r.pop_mark()),
    "STACK_GLOBAL": lambda r, _: r.push_global(*r.pop_n(2)),
    "GLOBAL": lambda r, arg: r.push_global(*str(arg).split(" ", 1)),
    "REDUCE": lambda r, _: r.call(newobj=False),
    "NEWOBJ": lambda r, _: r.call(newobj=True),
    "BUILD": lambda r, _: r.build(),
})  # fmt: skip


def _as(value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind):
        raise NotDecodable(f"a {type(value).__name__} where {kind} belongs")
    return value


class NotRestoredSchedule:
    """Stands for a schedule the zip saved as a function (code zoo does not run): the model
    plays; training it calls the schedule and stops with one line. While SB3 loads the
    model, it gives a stand-in learning rate for the optimizer that the saved one replaces."""

    STAND_IN = 1e-3

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.loading = True

    def __call__(self, _progress_remaining: float) -> float:
        if self.loading:
            return self.STAND_IN
        raise UserError(
            f"{self.path}: its {self.key} was saved as a function, which zoo does not run; "
            f"start a new run from its weights with --init-from {self.path}"
        )


# --- the zip's data -------------------------------------------------------------------------


def read_data(path: Path) -> dict[str, Any]:
    """The JSON of the zip's `data` entry, nothing unpickled; one line if it is no model zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data").decode())
    except ZIP_ERRORS as error:
        raise UserError(
            f"{path}: not a readable model zip ({reason_of(error)}); point at a .zip a run saved"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a readable model zip (its data is no mapping)")
    return data


def reason_of(error: BaseException) -> str:
    if isinstance(error, pickle.UnpicklingError):  # torch's text goes on to suggest unsafe
        return "its weights hold more than tensors: torch.load(weights_only=True) refused them"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def serialized_keys(data: Mapping[str, Any]) -> list[str]:
    return [key for key, item in data.items() if isinstance(item, dict) and ":serialized:" in item]


def decoded_entry(path: Path, data: Mapping[str, Any], key: str) -> Any:
    """The value of the pickled entry `key`, decoded without unpickling, or one line."""
    try:
        blob = base64.b64decode(str(data[key][":serialized:"]).encode(), validate=True)
        return decode_pickle(blob)
    except (NotDecodable, binascii.Error, ValueError, KeyError, IndexError, TypeError) as error:
        raise UserError(
            f"{path}: its {key} needs code that zoo does not run to be read ({error}); zoo "
            "loads zips of DQN, QR-DQN, A2C and PPO that zoo, rl_zoo3 or SB3 saved"
        ) from None


# --- spaces ---------------------------------------------------------------------------------


def saved_spaces(path: Path, data: Mapping[str, Any]) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """The observation and action spaces as the readable description in the zip gives them."""
    return (
        _space_from_description(path, data, "observation_space"),
        _space_from_description(path, data, "action_space"),
    )


def _space_from_description(path: Path, data: Mapping[str, Any], key: str) -> gym.Space[Any]:
    item = data.get(key)
    kind = item.get(":type:", "") if isinstance(item, dict) else ""
    try:
        if kind == "<class 'gymnasium.spaces.discrete.Discrete'>":
            assert isinstance(item, dict)
            return gym.spaces.Discrete(int(item["n"]), start=int(item.get("start", 0)))
        if kind == "<class 'gymnasium.spaces.box.Box'>":
            assert isinstance(item, dict)
            dtype = np.dtype(str(item["dtype"]))
            shape = tuple(int(n) for n in item["_shape"])
            low, high = (_bounds(str(item[b]), shape, dtype) for b in ("low", "high"))
            return gym.spaces.Box(low, high, shape, dtype)
    except (KeyError, ValueError, TypeError) as error:
        raise UserError(f"{path}: its {key} cannot be read ({error}); play it with --env") from None
    raise UserError(
        f"{path}: its {key} ({kind or 'none'}) is not one zoo rebuilds without an env; "
        "play it with --env"
    )


def _bounds(text: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """numpy's printed bounds; a long array printed with `...` only when all shown are equal."""
    values = np.array(text.replace("[", " ").replace("]", " ").replace("...", " ").split(),
                      dtype=np.float64).astype(dtype)  # fmt: skip
    if "..." in text:
        if values.size == 0 or not np.all(values == values[0]):
            raise ValueError("its bounds are printed in part")
        return np.full(shape, values[0], dtype)
    return values.reshape(shape)


def describe_space(space: gym.Space[Any]) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"{int(space.n)} actions"
    if isinstance(space, gym.spaces.Box):
        return f"observations {space.dtype} {tuple(space.shape)}"
    return str(space)


def _fits(saved: gym.Space[Any], given: gym.Space[Any]) -> bool:
    if isinstance(saved, gym.spaces.Discrete):
        return isinstance(given, gym.spaces.Discrete) and int(saved.n) == int(given.n)
    if isinstance(saved, gym.spaces.Box):
        return (isinstance(given, gym.spaces.Box) and saved.shape == given.shape
                and saved.dtype == given.dtype)  # fmt: skip
    return False


def check_spaces_fit(
    path: Path, data: Mapping[str, Any], env: VecEnv | gym.Env[Any, Any], env_name: str
) -> None:
    """Refuse, in one line naming both, a model whose spaces are not the env's (a model of
    another game), before any step is played."""
    for key, given in (("observation_space", env.observation_space),
                       ("action_space", env.action_space)):  # fmt: skip
        saved = _space_from_description(path, data, key)
        if not _fits(saved, given):
            raise UserError(
                f"{path} was trained with {describe_space(saved)}, but {env_name} has "
                f"{describe_space(given)}: it is a model of another game or env"
            )


# --- loading --------------------------------------------------------------------------------


def safe_custom_objects(
    path: Path,
    data: Mapping[str, Any],
    spaces: tuple[gym.Space[Any], gym.Space[Any]] | None = None,
) -> dict[str, Any]:
    """A value for every pickled entry of the zip, so that SB3 unpickles none of them."""
    observation_space, action_space = spaces or saved_spaces(path, data)
    objects: dict[str, Any] = {}
    for key in serialized_keys(data):
        if key == "observation_space":
            objects[key] = observation_space
        elif key == "action_space":
            objects[key] = action_space
        elif key in _RECREATED:
            objects[key] = None
        elif key in _SCHEDULES:
            try:
                objects[key] = decoded_entry(path, data, key)
            except UserError:
                objects[key] = NotRestoredSchedule(path, key)
        else:
            objects[key] = decoded_entry(path, data, key)
    return objects


def algorithm_of(path: Path) -> type[BaseAlgorithm]:
    """The zoo algorithm class that saved `path`, told by the policy class stored in it."""
    data = read_data(path)
    policy_class = decoded_entry(path, data, "policy_class") if "policy_class" in data else None
    if isinstance(policy_class, type):
        algorithm = registry.algorithm_saving(policy_class, data)
        if algorithm is not None:
            return algorithm
    raise UserError(
        f"{path}: holds no DQN, QR-DQN, C51, A2C, PPO, RecurrentPPO or TRPO policy; point at a .zip "
        "a run saved"
    )


def load_model(path: str | Path, device: str = "auto") -> BaseAlgorithm:
    """The model in `path` with its network, variant switches and schedules, ready to act."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    return load_algorithm(algorithm_of(path), path, device=device)


def load_algorithm(
    algorithm: type[BaseAlgorithm],
    path: Path,
    env: VecEnv | None = None,
    device: str = "auto",
    play_env: VecEnv | None = None,
    env_name: str | None = None,
) -> BaseAlgorithm:
    """`algorithm.load` of `path` without unpickling anything. `env`: the env to train on
    (SB3's); `play_env`: one it will only act on. Their spaces are checked first (one line
    naming both, `env_name` saying whose they are)."""
    data = read_data(path)
    spaces = None
    target = env if env is not None else play_env
    if target is not None:
        check_spaces_fit(path, data, target, env_name or "the env")
        spaces = (target.observation_space, target.action_space)
    custom_objects = safe_custom_objects(path, data, spaces)
    with warnings.catch_warnings():
        # SB3 warns that a saved n-step buffer class is "custom"; the saved kwargs keep n.
        warnings.filterwarnings(
            "ignore", message=r".*is ignored because a custom `replay_buffer_class`"
        )
        try:
            model = algorithm.load(path, env=env, device=device, custom_objects=custom_objects)
        except (*ZIP_ERRORS, AssertionError, TypeError, AttributeError) as error:
            raise UserError(f"{path}: cannot load the model ({reason_of(error)})") from None
    for value in custom_objects.values():
        if isinstance(value, NotRestoredSchedule):
            value.loading = False
    return model
