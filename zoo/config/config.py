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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from zoo.algorithms import registry
from zoo.config import rl_zoo3
from zoo.config.checks import check_combinations
from zoo.config.exploration import without_epsilon_for_noisy
from zoo.config.layers import (
    Layer,
    file_data_layers,
    file_layers,
    parse_set_argument,
    preset_layer,
    shipped_hyperparams_file,
)
from zoo.core.errors import UserError
from zoo.envs.ale_vec_env import ale_vector_available
from zoo.envs.stack import EnvSettings, EnvSpec, has_image_observations, resolve_env
from zoo.schema.fields import Field, FieldError, Schema
from zoo.schema.keys import (
    RENAMED_KEYS,
    SCHEDULE_KEYS,
    SCHEMAS,
    TOOLKIT_FIELDS,
    toolkit_defaults,
)
from zoo.schema.schedules import Schedule, build_schedule


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
    """How a training run logs, saves, records videos, stops and uses the CPU."""

    log_freq: int
    save_freq: int
    keep_checkpoints: int
    save_replay_buffer: bool
    stop_at_eval_score: float | None
    stop_at_training_score: float | None
    torch_threads: int | None
    record_every: int
    record_format: str


@dataclass(frozen=True)
class ReplaySettings:
    """The replay buffer of an off-policy algorithm (dqn, qrdqn, c51)."""

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
        """The replay buffer settings; None for on-policy algorithms (a2c, ppo, ppo_lstm, trpo)."""
        if "buffer_size" not in self.hyperparams:
            return None
        settings: ReplaySettings = _settings(ReplaySettings, self.hyperparams)
        return settings

    def learning_rate_schedule(self) -> Schedule:
        return build_schedule(self.hyperparams["learning_rate"], self.n_timesteps)

    def clip_range_schedule(self) -> Schedule | None:
        """PPO's (and ppo_lstm's) clip range as a function of the global step; None for other
        algos."""
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
        classes. Schedules go in as zoo Schedule objects of the global step (the step-scheduled
        mixins of zoo/algorithms/mixins.py); the model starts at their step-0 value and saves them with itself."""
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
            user_layers.extend(file_data_layers(hyperparams_file, read.data, env, schema))
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
        merged["policy"] = "CnnLstmPolicy" if algo == "ppo_lstm" else "CnnPolicy"
        origins["policy"] = f"{env.name}'s image observations"
    if "exploration" in schema.algorithm:
        merged = without_epsilon_for_noisy(merged, origins, positions, shipped)
        merged = _fold_exploration_keys(merged, algo, origins, positions)
    for key in SCHEDULE_KEYS:
        if key in merged:
            merged[key] = _check_merged_schedule(
                key, merged[key], origins.get(key, "defaults"), schema
            )
    hyperparams = _with_defaults(merged, algo, env)
    check_combinations(hyperparams, origins, env)
    if backend is not None and origins.get("vec_env") == backend.origin:
        rl_zoo3.note(rl_zoo3.backend_note(backend.origin))
    return Config(algo=algo, env=env, hyperparams=MappingProxyType(hyperparams))


def _chosen_keys(layers: Sequence[Layer]) -> set[str]:
    return {key for layer in layers for key in layer.values}


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
