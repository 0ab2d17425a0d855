"""Hyperparameters: YAML sections merged in a fixed order, validated, then frozen.

Order (later wins): `default` < `atari` (or `atari_ram`) < the env's own section
< `--preset` < `--hyperparams-file` < dedicated CLI flags (-n, --n-envs, --seed) < `--set`.
A hyperparameter file in rl-baselines3-zoo's format is translated by zoo/config/rl_zoo3.py.
Every value is checked while its layer is still known, so an error names its file and section.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from zoo.algorithms import registry
from zoo.config import rl_zoo3
from zoo.core.errors import UserError
from zoo.core.yamlio import parse_yaml_text, read_yaml_file
from zoo.envs.ale_vec_env import ale_env_kwargs, ale_vector_available
from zoo.envs.stack import EnvSettings, EnvSpec, has_image_observations, resolve_env
from zoo.schema.keys import (
    RENAMED_KEYS,
    SCHEDULE_KEYS,
    SCHEMAS,
    TOOLKIT_FIELDS,
    Field,
    FieldError,
    Schema,
    toolkit_defaults,
)
from zoo.schema.schedules import Schedule, build_schedule

GENERIC_SECTIONS = ("default", "atari", "atari_ram")


@dataclass(frozen=True)
class Layer:
    """One source of hyperparameters and where it came from, for error messages."""

    origin: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class EvaluationSettings:
    """The evaluations during training: the eval_* keys without their prefix."""

    freq: int
    episodes: int
    epsilon: float
    actions: str
    max_frames: int

    @property
    def sampled(self) -> bool:
        return self.actions == "sampled"


@dataclass(frozen=True)
class RunSettings:
    """How a training run logs, saves, stops and uses the CPU."""

    log_freq: int
    save_freq: int
    keep_checkpoints: int
    save_replay_buffer: bool
    stop_at_eval_score: float | None
    stop_at_training_score: float | None
    torch_threads: int | None


@dataclass(frozen=True)
class ReplaySettings:
    """The replay buffer of an off-policy algorithm (dqn, qrdqn)."""

    buffer_size: int
    learning_starts: int
    replay_buffer: str
    optimize_memory_usage: bool
    frame_store: str


def _settings(cls: type[Any], hyperparams: Mapping[str, Any], prefix: str = "") -> Any:
    """A settings dataclass filled from the keys named `prefix` + each of its fields."""
    return cls(**{f.name: hyperparams[prefix + f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Config:
    """A validated, fully resolved configuration; never mutated after `build_config`."""

    algo: str
    env: EnvSpec
    hyperparams: Mapping[str, Any]

    @property
    def schema(self) -> Schema:
        return SCHEMAS[self.algo]

    @property
    def n_timesteps(self) -> int:
        return int(self.hyperparams["n_timesteps"])

    @property
    def seed(self) -> int:
        return int(self.hyperparams["seed"])

    @property
    def policy(self) -> str:
        return str(self.hyperparams["policy"])

    @property
    def n_envs(self) -> int:
        return int(self.hyperparams["n_envs"])

    def env_settings(self) -> EnvSettings:
        return EnvSettings.from_hyperparams(self.hyperparams)

    @property
    def evaluation(self) -> EvaluationSettings:
        settings: EvaluationSettings = _settings(EvaluationSettings, self.hyperparams, "eval_")
        return settings

    @property
    def run(self) -> RunSettings:
        settings: RunSettings = _settings(RunSettings, self.hyperparams)
        return settings

    @property
    def replay(self) -> ReplaySettings | None:
        """The replay buffer settings; None for on-policy algorithms (a2c, ppo)."""
        if "buffer_size" not in self.hyperparams:
            return None
        settings: ReplaySettings = _settings(ReplaySettings, self.hyperparams)
        return settings

    def learning_rate_schedule(self) -> Schedule:
        return build_schedule(self.hyperparams["learning_rate"], self.n_timesteps)

    def clip_range_schedule(self) -> Schedule | None:
        """PPO's clip range as a function of the global step; None for other algos."""
        spec = self.hyperparams.get("clip_range")
        return None if spec is None else build_schedule(spec, self.n_timesteps)

    def clip_range_vf_schedule(self) -> Schedule | None:
        """PPO's value clip range as a function of the global step; None: no clipping."""
        spec = self.hyperparams.get("clip_range_vf")
        return None if spec is None else build_schedule(spec, self.n_timesteps)

    def exploration_schedule(self) -> Schedule | None:
        spec = self.hyperparams.get("exploration")
        if spec is None:
            return None
        return build_schedule(spec, self.n_timesteps, exploration=True)

    def priority_beta_schedule(self) -> Schedule | None:
        spec = self.hyperparams.get("priority_beta")
        return None if spec is None else build_schedule(spec, self.n_timesteps, rising=True)

    def algorithm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the algorithm's constructor, with registry names resolved to
        classes. Schedules go in as zoo Schedule objects of the global step (zoo/algorithms/algos.py's
        mixins); the model starts at their step-0 value and saves them with itself."""
        kwargs = {
            key: copy.deepcopy(value)
            for key, value in self.hyperparams.items()
            if key in self.schema.algorithm and key not in SCHEDULE_KEYS
        }
        schedules = {
            "lr_step_schedule": self.learning_rate_schedule(),
            "epsilon_schedule": self.exploration_schedule(),
            "clip_step_schedule": self.clip_range_schedule(),
            "clip_vf_step_schedule": self.clip_range_vf_schedule(),
            "priority_beta_schedule": self.priority_beta_schedule(),
        }
        kwargs.update({key: value for key, value in schedules.items() if value is not None})
        if "train_freq" in kwargs:
            kwargs.update(per_env_step_training(kwargs, self.n_envs))
        if "train_freq" in kwargs and isinstance(kwargs["train_freq"], list):
            kwargs["train_freq"] = tuple(kwargs["train_freq"])
        kwargs["policy_kwargs"] = registry.resolve_policy_kwargs(kwargs.get("policy_kwargs") or {})
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready hyperparameters; usable again as `--hyperparams-file`."""
        return copy.deepcopy(dict(self.hyperparams))


def per_env_step_training(kwargs: Mapping[str, Any], n_envs: int) -> dict[str, Any]:
    """SB3's `train_freq` and `gradient_steps` for `n_envs` envs, from zoo's, which count
    agent steps as in the single-env setting: `train_freq: 4, gradient_steps: 1` is one
    gradient step per 4 agent steps whatever n_envs. SB3 counts `train_freq` in vector steps of
    n_envs agent steps each, so zoo takes the fewest vector steps that hold a whole number of
    phases: train_freq F / gcd(F, n_envs), gradient_steps G * n_envs / gcd(F, n_envs)
    (4 envs: 1 and 1; 16 envs: 1 and 4; 3 envs: 4 and 3). `[N, episode]` and
    `gradient_steps: -1` (one per transition) need no change."""
    train_freq, gradient_steps = kwargs["train_freq"], kwargs.get("gradient_steps", 1)
    unit = train_freq[1] if isinstance(train_freq, list) else "step"
    if n_envs == 1 or unit != "step":
        return {}
    frequency = int(train_freq[0] if isinstance(train_freq, list) else train_freq)
    common = math.gcd(frequency, n_envs)
    converted: dict[str, Any] = {"train_freq": frequency // common}
    if gradient_steps != -1:
        converted["gradient_steps"] = int(gradient_steps) * n_envs // common
    return converted


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


def build_config(
    algo: str,
    env_name: str,
    hyperparams_file: Path | None = None,
    overrides: Sequence[str] = (),
    flags: Sequence[tuple[str, str, Any]] = (),
    preset: str | None = None,
    extra_layers: Sequence[Layer] = (),
) -> Config:
    """Merge and validate every source of hyperparameters for one run.

    `flags` are (origin, key, value) triples from dedicated CLI options such as `--n-envs`;
    `extra_layers` go last (the values `zoo tune` draws for a trial).
    """
    if algo not in SCHEMAS:
        raise UserError(f"unknown algo {algo!r}: choose one of {', '.join(SCHEMAS)}")
    schema = SCHEMAS[algo]
    env = resolve_env(env_name)
    layers = list(file_layers(shipped_hyperparams_file(algo), env, schema))
    shipped = len(layers)
    user_layers: list[Layer] = []
    backend: Layer | None = None  # vec_env sb3 for an rl_zoo3 file's AtariWrapper
    if hyperparams_file is not None:
        read = rl_zoo3.read_hyperparams_file(hyperparams_file)
        if read.rl_zoo3:
            # rl_zoo3's algorithm is SB3's: zoo's extensions stay off under its file
            plain = rl_zoo3.PLAIN_PRESETS.get(algo)
            if plain is not None:
                layers.append(preset_layer(plain, algo))
            wrapper = rl_zoo3.backend_layer(read, env)
            backend = None if wrapper is None else Layer(*wrapper)
            user_layers.extend([backend] if backend is not None else [])
            user_layers.append(Layer(*rl_zoo3.hyperparams_layer(read, env)))
        else:
            user_layers.extend(_file_layers(hyperparams_file, read.data, env, schema))
    if preset is not None:
        layers.append(preset_layer(preset, algo))
    layers.extend(user_layers)
    layers.extend(Layer(origin, {key: value}) for origin, key, value in flags if value is not None)
    layers.extend(parse_set_argument(text) for text in overrides)
    layers.extend(extra_layers)

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    positions: dict[str, int] = {}
    for position, layer in enumerate(layers):
        for key, value in validate_layer(layer, schema).items():
            replaces = key in SCHEDULE_KEYS and isinstance(value, dict) and "type" in value
            merged[key] = copy.deepcopy(value) if replaces else _merge_value(merged.get(key), value)
            origins[key] = layer.origin
            positions[key] = position
    user_chose_policy = "policy" in _chosen_keys(layers[shipped:])
    if env.kind == "other" and not user_chose_policy and has_image_observations(env):
        # the shipped sections say MlpPolicy for envs they do not know; images need a CNN
        merged["policy"] = "CnnPolicy"
        origins["policy"] = f"{env.name}'s image observations"
    if "exploration" in schema.algorithm:
        merged = _fold_exploration_keys(merged, algo, origins, positions)
    for key in SCHEDULE_KEYS:
        if key in merged:
            merged[key] = _check_merged_schedule(
                key, merged[key], origins.get(key, "defaults"), schema
            )
    hyperparams = _with_defaults(merged, algo, env)
    _check_combinations(hyperparams, origins, env)
    if backend is not None and origins.get("vec_env") == backend.origin:
        rl_zoo3.note(rl_zoo3.backend_note(backend.origin))
    return Config(algo=algo, env=env, hyperparams=MappingProxyType(hyperparams))


def _chosen_keys(layers: Sequence[Layer]) -> set[str]:
    return {key for layer in layers for key in layer.values}


def file_layers(path: Path, env: EnvSpec, schema: Schema) -> Iterable[Layer]:
    """The layers one YAML file contributes for `env`: a flat file is one layer, a
    sectioned file gives its `default`, `atari`/`atari_ram` and env sections in that order."""
    return _file_layers(path, read_yaml_file(path), env, schema)


def _file_layers(path: Path, data: Any, env: EnvSpec, schema: Schema) -> list[Layer]:
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


def _check_merged_schedule(key: str, value: Any, origin: str, schema: Schema) -> Any:
    if isinstance(value, dict) and "type" not in value:
        raise UserError(
            f"{origin}: key {key!r}: there is no schedule here to edit; give a whole one, "
            f"e.g. {key}={{type: linear, initial: 1e-3, final: 0}}"
        )
    try:
        return schema.fields[key].check(value)
    except FieldError as error:
        raise UserError(f"{origin}: key {key!r}: {error}") from None


def validate_layer(layer: Layer, schema: Schema) -> dict[str, Any]:
    """Check every key and value of one layer; the first problem is one UserError line."""
    checked: dict[str, Any] = {}
    fields = schema.fields
    for old_key, value in layer.values.items():
        key = _current_name(old_key, layer.origin)
        if key in schema.not_applicable:
            raise UserError(
                f"{layer.origin}: key {key!r} does not apply here: {schema.not_applicable[key]}"
            )
        if key not in fields:
            raise UserError(f"{layer.origin}: {_unknown_key_text(key, fields)}")
        if key in SCHEDULE_KEYS and isinstance(value, dict) and "type" not in value:
            checked[key] = value  # a dotted edit of a schedule; checked once merged
            continue
        try:
            checked[key] = fields[key].check(value)
        except FieldError as error:
            raise UserError(f"{layer.origin}: key {key!r}: {error}") from None
    return checked


_NOTED_RENAMES: set[str] = set()


def _current_name(key: str, origin: str) -> str:
    """A key's name now; an old name works, with a note the first time it is seen."""
    new = RENAMED_KEYS.get(key)
    if new is None:
        return key
    if key not in _NOTED_RENAMES:
        _NOTED_RENAMES.add(key)
        print(
            f"note: {origin}: key {key!r} is now called {new!r}; please rename it", file=sys.stderr
        )
    return new


def _unknown_key_text(key: Any, fields: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(str(key), list(fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; valid keys: {', '.join(fields)}"


def _merge_value(old: Any, new: Any) -> Any:
    """Mappings (policy_kwargs, env_kwargs) merge entry by entry; anything else replaces."""
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = _merge_value(old.get(key), value)
        return merged
    return copy.deepcopy(new)


SB3_EXPLORATION_KEYS = ("exploration_initial_eps", "exploration_final_eps", "exploration_fraction")


def _fold_exploration_keys(
    merged: Mapping[str, Any],
    algo: str,
    origins: Mapping[str, str],
    positions: Mapping[str, int],
) -> dict[str, Any]:
    """One epsilon schedule: SB3's three exploration_* keys become a linear `exploration` spec,
    unless an `exploration` schedule is set, which replaces the keys set before it."""
    folded = {k: v for k, v in merged.items() if k not in SB3_EXPLORATION_KEYS}
    edits = merged.get("exploration")
    if isinstance(edits, dict) and "type" not in edits:
        # a dotted edit (--set exploration.final=0.05) of the linear schedule the keys describe
        merged = {k: v for k, v in merged.items() if k != "exploration"}
        folded = _fold_exploration_keys(merged, algo, origins, positions)
        folded["exploration"] = {**folded["exploration"], **edits}
        return folded
    if "exploration" in merged:
        for key in SB3_EXPLORATION_KEYS:
            if key in merged and positions[key] > positions["exploration"]:
                raise UserError(
                    f"{origins[key]}: key {key!r} conflicts with the exploration schedule set in "
                    f"{origins['exploration']}; change the schedule instead (e.g. --set exploration.final=0.05)"
                )
        return folded
    sb3_defaults = registry.constructor_defaults(registry.ALGORITHMS[algo])
    initial, final, fraction = (merged.get(key, sb3_defaults[key]) for key in SB3_EXPLORATION_KEYS)
    folded["exploration"] = {
        "type": "linear",
        "initial": initial,
        "final": final,
        "fraction": fraction,
    }
    if final > initial:
        key = (
            "exploration_final_eps"
            if "exploration_final_eps" in merged
            else "exploration_initial_eps"
        )
        raise UserError(
            f"{origins.get(key, 'defaults')}: key {key!r}: final epsilon ({final:g}) is larger than initial ({initial:g})"
        )
    return folded


def _with_defaults(merged: Mapping[str, Any], algo: str, env: EnvSpec) -> dict[str, Any]:
    """Fill every key the run depends on, so config.yml shows (and pins) all of them."""
    schema = SCHEMAS[algo]
    defaults = toolkit_defaults(env.kind)
    if defaults["vec_env"] == "ale" and not ale_vector_available():
        defaults["vec_env"] = TOOLKIT_FIELDS["vec_env"].default  # ale-py too old for the fast one
    defaults["seed"] = secrets.randbelow(2**31)
    constructor_defaults = registry.constructor_defaults(registry.ALGORITHMS[algo])
    for key, spec in schema.algorithm.items():
        if key in SB3_EXPLORATION_KEYS or key not in constructor_defaults:
            continue  # the exploration_* keys are folded into `exploration`
        if _accepts(spec, constructor_defaults[key]):
            defaults[key] = spec.check(constructor_defaults[key])  # normalised: 10 -> 10.0
    full = {**defaults, **merged}
    order = [*schema.toolkit, *schema.algorithm]
    return {key: full[key] for key in order if key in full}


def _accepts(spec: Field, value: Any) -> bool:
    try:
        spec.check(value)
    except FieldError:
        return False
    return True


def _check_combinations(
    hyperparams: Mapping[str, Any], origins: Mapping[str, str], env: EnvSpec
) -> None:
    def fail(key: str, message: str) -> None:
        origin = origins.get(key, "defaults")
        raise UserError(f"{origin}: key {key!r}: {message}")

    if hyperparams["policy"] == "CnnPolicy" and not has_image_observations(env):
        fail("policy", f"CnnPolicy needs image observations, {env.name} has none; use MlpPolicy")
    if hyperparams["vec_env"] == "ale":
        _check_ale_backend(hyperparams, env, fail)
    buffer_size = hyperparams.get("buffer_size")
    if buffer_size is not None and hyperparams.get("n_steps", 1) > buffer_size:
        fail(
            "n_steps", f"{hyperparams['n_steps']} is longer than the replay buffer ({buffer_size})"
        )
    _check_replay_buffer(hyperparams, env, fail)
    if "buffer_size" in hyperparams:
        _check_replay_buffer_kwargs(hyperparams, fail)
    if hyperparams.get("n_steps", 1) > 1 and hyperparams.get("optimize_memory_usage"):
        fail(
            "optimize_memory_usage",
            "SB3's n-step replay buffer cannot store frames once; set it false "
            "(replay_buffer: frames stores each frame once, n-step returns included)",
        )
    _check_network(hyperparams, fail)
    if hyperparams.get("augmentation") is not None and hyperparams["policy"] != "CnnPolicy":
        fail(
            "augmentation",
            f"{hyperparams['augmentation']} shifts pixel images; {hyperparams['policy']} "
            "has none (set augmentation: null)",
        )
    if "n_epochs" in hyperparams:
        _check_minibatches(hyperparams, origins, fail)
    optimizer_kwargs = (hyperparams.get("policy_kwargs") or {}).get("optimizer_kwargs") or {}
    if "lr" in optimizer_kwargs:
        fail("policy_kwargs", "optimizer_kwargs.lr: the step size is learning_rate; set that")
    batch_size = hyperparams.get("batch_size")
    if buffer_size is not None and batch_size is not None and batch_size > buffer_size:
        buffer_origin = origins.get("buffer_size", "defaults")
        fail(
            "batch_size",
            f"{batch_size} is larger than the replay buffer ({buffer_size}, from {buffer_origin})",
        )
    if env.kind in ("atari", "atari_ram"):
        _check_ale_settings(hyperparams.get("env_kwargs") or {}, fail)
    if hyperparams.get("eval_actions") == "sampled" and "buffer_size" in hyperparams:
        fail(
            "eval_actions", "sampled needs a policy that samples its actions (a2c, ppo); use greedy"
        )
    replay_kwargs = hyperparams.get("replay_buffer_kwargs") or {}
    if hyperparams.get("optimize_memory_usage") and replay_kwargs.get(
        "handle_timeout_termination", True
    ):
        fail(
            "optimize_memory_usage",
            "SB3's replay buffer needs replay_buffer_kwargs: {handle_timeout_termination: false} with it",
        )


def _check_replay_buffer(
    hyperparams: Mapping[str, Any], env: EnvSpec, fail: Callable[[str, str], None]
) -> None:
    if hyperparams.get("prioritized_replay") and hyperparams.get("replay_buffer") != "frames":
        fail(
            "prioritized_replay",
            "prioritized replay draws from the frame buffer: it needs replay_buffer: frames "
            "(Atari pixel games)",
        )
    if hyperparams.get("replay_buffer") != "frames":
        if hyperparams.get("frame_store") not in (None, "host"):
            fail(
                "frame_store", "only the frame buffer has a frame store: set replay_buffer: frames"
            )
        return
    if env.kind != "atari":
        fail("replay_buffer", f"frames stores pixel frames, {env.name} has none; use sb3")
    if hyperparams.get("optimize_memory_usage"):
        fail(
            "optimize_memory_usage",
            "the frame buffer (replay_buffer: frames) stores each frame once already; set it false",
        )


# replay_buffer_kwargs each buffer takes, and what their values must be.
_REPLAY_BUFFER_KWARGS: Mapping[str, Mapping[str, str]] = {
    "sb3": {"handle_timeout_termination": "true or false"},
    "frames": {
        "handle_timeout_termination": "true or false",
        "episode_start_reserve": "a number >= 0 (frames per transition kept for episode starts)",
    },
}


def _check_replay_buffer_kwargs(
    hyperparams: Mapping[str, Any], fail: Callable[[str, str], None]
) -> None:
    kind = str(hyperparams["replay_buffer"])
    accepted = _REPLAY_BUFFER_KWARGS.get(kind, {})
    for key, value in (hyperparams.get("replay_buffer_kwargs") or {}).items():
        if key not in accepted:
            fail(
                "replay_buffer_kwargs",
                f"the {kind} replay buffer takes no {key!r}; it takes {', '.join(accepted)}",
            )
        wrong_flag = key == "handle_timeout_termination" and not isinstance(value, bool)
        wrong_number = key == "episode_start_reserve" and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0
        )
        if wrong_flag or wrong_number:
            fail("replay_buffer_kwargs", f"{key} must be {accepted[key]}, got {value!r}")


def _check_ale_backend(
    hyperparams: Mapping[str, Any], env: EnvSpec, fail: Callable[[str, str], None]
) -> None:
    if env.kind != "atari":
        fail(
            "vec_env",
            f"ale runs Atari pixel games only; {env.name} keeps the SB3 stack (sb3 or subproc)",
        )
    if not ale_vector_available():
        fail("vec_env", "ale needs ale-py >= 0.11 (AtariVectorEnv); upgrade it or use sb3")
    try:
        ale_env_kwargs(env.gym_id, dict(hyperparams.get("env_kwargs") or {}))
    except UserError as error:
        fail("env_kwargs", str(error))


def _check_ale_settings(env_kwargs: Mapping[str, Any], fail: Callable[[str, str], None]) -> None:
    """The ALE settings users set through env_kwargs: ALE takes any number silently."""
    sticky = env_kwargs.get("repeat_action_probability")
    if sticky is not None and (
        isinstance(sticky, bool) or not isinstance(sticky, (int, float)) or not 0 <= sticky <= 1
    ):
        fail("env_kwargs", f"repeat_action_probability must be a number in [0, 1], got {sticky!r}")
    frames = env_kwargs.get("max_num_frames_per_episode")
    if frames is not None and (
        isinstance(frames, bool) or not isinstance(frames, int) or frames < 0
    ):
        fail(
            "env_kwargs",
            f"max_num_frames_per_episode must be an integer >= 0 (0: no cap), got {frames!r}",
        )
    full = env_kwargs.get("full_action_space")
    if full is not None and not isinstance(full, bool):
        fail("env_kwargs", f"full_action_space must be true or false, got {full!r}")


def _check_minibatches(
    hyperparams: Mapping[str, Any], origins: Mapping[str, str], fail: Callable[[str, str], None]
) -> None:
    """PPO's minibatches are cut from each rollout of n_steps x n_envs transitions."""
    rollout = int(hyperparams["n_steps"]) * int(hyperparams["n_envs"])
    batch_size = int(hyperparams["batch_size"])
    where = (
        f"n_steps {hyperparams['n_steps']} x n_envs {hyperparams['n_envs']} = {rollout}, "
        f"from {origins.get('n_steps', 'defaults')} and {origins.get('n_envs', 'defaults')}"
    )
    if batch_size > rollout:
        fail("batch_size", f"{batch_size} is larger than a rollout ({where})")
    if hyperparams["normalize_advantage"] and batch_size < 2:
        fail("batch_size", "normalize_advantage needs minibatches of 2 or more transitions")


def minibatch_note(hyperparams: Mapping[str, Any]) -> str | None:
    """PPO with minibatches that do not divide its rollout: each epoch ends with a short one."""
    if "n_epochs" not in hyperparams:
        return None
    rollout = int(hyperparams["n_steps"]) * int(hyperparams["n_envs"])
    batch_size = int(hyperparams["batch_size"])
    if rollout % batch_size == 0:
        return None
    return (
        f"note: batch_size {batch_size} does not divide a rollout of n_steps x n_envs = "
        f"{rollout}: each epoch ends with a minibatch of {rollout % batch_size}"
    )


def _check_network(hyperparams: Mapping[str, Any], fail: Callable[[str, str], None]) -> None:
    network = hyperparams.get("network")
    if network is None:
        return
    if hyperparams["policy"] != "CnnPolicy":
        fail(
            "network",
            f"{network} is a pixel network for CnnPolicy; with {hyperparams['policy']} "
            "size the layers with policy_kwargs.net_arch",
        )
    extractor = (hyperparams.get("policy_kwargs") or {}).get("features_extractor_class")
    if extractor is not None:
        fail(
            "network",
            f"{network} conflicts with policy_kwargs.features_extractor_class ({extractor}); "
            "set one of them",
        )
