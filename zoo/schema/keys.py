"""The hyperparameter schema: every key zoo accepts, each declared once.

A `Field` (zoo/schema/fields.py) holds all of one key's facts: its checker (with what it
accepts, in words), help text, defaults (for every env, Atari games, Atari pixel games), the
names it had before and, where it has one, its command-line flag. YAML validation, the defaults
of a resolved config, the flags of `zoo train`, `tune` and `schedule`, their `--help` and
docs/HYPERPARAMETERS.md all come from here. Algorithm keys take their defaults from the
algorithm's constructor (SB3's facts, read by `algorithms.registry.constructor_defaults`), then from
hyperparams/<algo>.yml.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from zoo.schema import names
from zoo.schema.fields import (
    NO_DEFAULT,
    VEC_ENV_ALIASES,
    Field,
    Flag,
    Schema,
    boolean,
    boolean_or,
    choice,
    integer,
    nested,
    number,
    optional,
    scalar_mapping,
    schedule,
    train_freq,
    vec_env,
)
from zoo.schema.on_policy_keys import (
    A2C_FIELDS,
    ON_POLICY_NOT_APPLICABLE,
    PPO_FIELDS,
    PPO_LSTM_FIELDS,
    RECURRENT_POLICY,
    TRPO_FIELDS,
    TRPO_NOT_APPLICABLE,
)
from zoo.schema.policy_fields import CHANNELS_LAST as _CHANNELS_LAST
from zoo.schema.policy_fields import COMMON_POLICY_KWARGS as _COMMON_POLICY_KWARGS
from zoo.schema.policy_fields import FUSED_ADAM as _FUSED_ADAM

# A game lasts at most 30 minutes of emulator time (60 frames a second), as in the papers.
MAX_GAME_FRAMES = 108_000


TOOLKIT_FIELDS: Mapping[str, Field] = {
    "n_timesteps": Field(
        integer(low=1),
        "total agent steps to train",
        default=100_000,
        flag=Flag(("-n", "--timesteps"), metavar="N"),
    ),
    "policy": Field(choice(names.POLICIES), "SB3 policy name", default="MlpPolicy"),
    "seed": Field(
        integer(low=0, high=2**32 - 1),
        "random seed of envs, torch and numpy",
        default_text="drawn at random and saved in config.yml",
        flag=Flag(("--seed",)),
    ),
    "n_envs": Field(
        integer(low=1, high=1024),
        "number of parallel envs",
        default=1,
        flag=Flag(("--n-envs",), metavar="N"),
    ),
    "vec_env": Field(
        vec_env,
        "env backend. ale: Atari pixel games in ale-py's C++ threads (the default where "
        "ale-py has it); sb3 or dummy: SB3's wrappers in this process; subproc: one process each",
        default="dummy",
        atari_pixels="ale",
        flag=Flag(("--vec-env",), type=str, choices=tuple(VEC_ENV_ALIASES)),
    ),
    "torch_threads": Field(
        optional(integer(low=1, high=1024)),
        "PyTorch CPU threads (null: zoo's choice)",
        default=None,
    ),
    "env_threads": Field(
        optional(integer(low=1, high=1024)),
        "C++ threads of vec_env ale (null: zoo's choice)",
        default=None,
    ),
    "frame_stack": Field(
        integer(low=1, high=64),
        "observations stacked (4 pixel frames, 3 RAM windows)",
        default=1,
    ),
    "noop_max": Field(
        integer(low=0, high=1000),
        "at most this many no-op frames at the start of a game",
        atari=30,
    ),
    "frame_skip": Field(
        integer(low=1, high=16), "agent acts every N frames (max over the last two)", atari=4
    ),
    "screen_size": Field(integer(low=8, high=512), "side of the square grayscale frame", atari=84),
    "terminal_on_life_loss": Field(boolean, "a lost life ends a training episode", atari=True),
    "clip_reward": Field(boolean, "train on the sign of the reward", atari=True),
    "env_kwargs": Field(scalar_mapping, "extra keyword arguments for gymnasium.make"),
    "stop_at_training_score": Field(
        number(optional=True),
        "stop once the last 100 training games average this score (null: never)",
        default=None,
        renamed_from=("stop_at_mean_score",),
    ),
    "log_freq": Field(
        integer(low=1), "agent steps between rows of logged training metrics", default=1000
    ),
    "save_freq": Field(
        integer(low=0),
        "agent steps between checkpoints (0: only at the end)",
        default=100_000,
        flag=Flag(("--save-freq",), metavar="N"),
    ),
    "keep_checkpoints": Field(integer(low=1, high=1000), "complete checkpoints kept", default=3),
    "save_replay_buffer": Field(
        boolean, "checkpoints include the replay buffer (large)", default=False
    ),
    "eval_freq": Field(
        integer(low=0),
        "agent steps between evaluations (0: never; Atari: every 1M frames)",
        default=10_000,
        atari=250_000,
    ),
    "eval_episodes": Field(integer(low=1, high=10_000), "full games per evaluation", default=10),
    "eval_epsilon": Field(
        number(low=0, high=1), "random-action probability while evaluating", default=0.0
    ),
    "eval_actions": Field(
        choice(("greedy", "sampled")),
        "evaluation actions: greedy, or sampled from the policy (a2c, ppo, ppo_lstm, trpo; the SB3 benchmark's "
        "way)",
        default="greedy",
    ),
    "eval_max_frames": Field(
        integer(low=1),
        f"cap on one evaluation game, in emulator frames ({MAX_GAME_FRAMES} = 30 minutes)",
        default=MAX_GAME_FRAMES,
    ),
    "record_every": Field(
        integer(low=0),
        "agent steps between videos of one whole evaluation game, in the run's "
        "videos/ folder (0: never)",
        default=0,
        flag=Flag(("--record-every",), metavar="N"),
    ),
    "record_format": Field(
        choice(("mp4", "gif")), "file format of the record_every videos", default="mp4"
    ),
    "stop_at_eval_score": Field(
        number(optional=True),
        "stop once an evaluation's mean full-game score reaches this (null: never)",
        default=None,
        flag=Flag(("--stop-at-eval-score", "--stop-at-reward"), type=float, metavar="X"),
        renamed_from=("stop_at_reward",),
    ),
}

_Q_LEARNING_FIELDS: Mapping[str, Field] = {
    "channels_last": _CHANNELS_LAST,
    "fused_adam": _FUSED_ADAM,
    "learning_rate": Field(schedule(low=0), "optimizer step size: a number or a schedule"),
    "buffer_size": Field(integer(low=1), "replay buffer capacity in transitions"),
    "learning_starts": Field(integer(low=0), "steps of random play before learning"),
    "random_warmup": Field(
        boolean, "act at random until learning_starts (false: the policy acts, for warm starts)"
    ),
    "batch_size": Field(integer(low=1), "transitions per gradient step"),
    "tau": Field(number(low=0, high=1, low_open=True), "soft target update coefficient (1 = hard)"),
    "gamma": Field(number(low=0, high=1), "discount factor"),
    "train_freq": Field(train_freq, "a gradient phase every N steps"),
    "gradient_steps": Field(
        integer(low=1, allow=(-1,)), "gradient steps per phase (-1: as many as env steps)"
    ),
    "n_steps": Field(integer(low=1, high=1000), "n-step return length"),
    "target_update_interval": Field(integer(low=1), "steps between target network updates"),
    "exploration_fraction": Field(
        number(low=0, high=1), "share of training over which epsilon anneals"
    ),
    "exploration_initial_eps": Field(number(low=0, high=1), "epsilon at the start"),
    "exploration_final_eps": Field(number(low=0, high=1), "epsilon after annealing"),
    "exploration": Field(
        schedule(low=0, high=1, exploration=True),
        "epsilon schedule (replaces the three exploration_* keys); 0 with noisy: true",
    ),
    "replay_buffer": Field(
        choice(names.REPLAY_BUFFERS),
        "frames: each pixel frame stored once, stacks rebuilt when sampled (Atari pixel games); "
        "sb3: SB3's buffer, two whole stacks per transition",
    ),
    "optimize_memory_usage": Field(
        boolean, "SB3's buffer keeps each stack once, not twice (replay_buffer: sb3, n_steps: 1)"
    ),
    "frame_store": Field(
        choice(names.FRAME_STORES),
        "where the frame buffer keeps its frames: host (main memory) or device (beside the "
        "network, e.g. in GPU memory: batches are gathered there, not copied from the host)",
    ),
    "prioritized_replay": Field(
        boolean,
        "draw transitions by priority |TD error| + priority_epsilon, proportional "
        "(Schaul et al. 2016); needs replay_buffer: frames",
    ),
    "priority_alpha": Field(
        number(low=0, high=1), "prioritized replay: P(i) ~ priority^alpha (0: uniform)"
    ),
    "priority_beta": Field(
        schedule(low=0, high=1, rising=True),
        "prioritized replay: importance-weight exponent, a number or a schedule of the "
        "global step (default 0.4 -> 1 over the run)",
    ),
    "priority_epsilon": Field(
        number(low=0, low_open=True), "prioritized replay: added to every |TD error|"
    ),
    "replay_buffer_kwargs": Field(scalar_mapping, "extra ReplayBuffer arguments"),
    "stats_window_size": Field(integer(low=1), "episodes averaged in logged statistics"),
    "double_q": Field(
        boolean, "Double DQN: the online network picks the next action, the target net values it"
    ),
    "dueling": Field(boolean, "Dueling head: value and advantage streams, Q = V + A - mean(A)"),
    "noisy": Field(
        boolean,
        "noisy nets (Fortunato et al. 2018): factorised Gaussian noise on the head's fully "
        "connected layers, fresh at every training forward pass and action; they explore "
        "instead of epsilon-greedy, so epsilon is 0 in training and nonzero exploration "
        "settings are refused",
    ),
    "noisy_sigma": Field(
        number(low=0, low_open=True),
        "noisy nets: sigma_0, each sigma starts at sigma_0/sqrt(inputs)",
    ),
    "noisy_eval": Field(
        choice(names.NOISY_EVAL_MODES),
        "noisy nets while evaluating: mean (the noise-free mean weights) or sample (fresh noise "
        "at every step, as in training)",
    ),
    "network": Field(
        choice(names.Q_NETWORKS, optional=True),
        "pixel Q-network: nature (2015) or dqn2013; null: the policy's default extractor",
    ),
    "augmentation": Field(
        choice(names.AUGMENTATIONS, optional=True),
        "augment sampled pixel observations in each update: random_shift (DrQ: +-4 pixels, "
        "border repeated) or random_shift_intensity (Dopamine's DrQ(eps): shift, then scale by "
        "1 + 0.05 x clipped noise); null: none",
    ),
    "compile": Field(
        boolean_or("auto"),
        "run each gradient step (forward, loss, backward, optimizer step) as one torch.compile'd "
        "function, CUDA graphs on a GPU; auto: on CUDA, not on the CPU (measured no faster there)",
    ),
}


SCHEMAS: Mapping[str, Schema] = {
    "dqn": Schema(
        toolkit=TOOLKIT_FIELDS,
        algorithm={
            **_Q_LEARNING_FIELDS,
            "loss": Field(choice(names.LOSSES), "TD loss: huber (error clipping) or mse"),
            "max_grad_norm": Field(
                number(low=0, low_open=True, optional=True), "gradient norm clip (null: none)"
            ),
            "policy_kwargs": Field(nested(_COMMON_POLICY_KWARGS), "network and optimizer settings"),
        },
    ),
    "a2c": Schema(
        toolkit=TOOLKIT_FIELDS, algorithm=A2C_FIELDS, not_applicable=ON_POLICY_NOT_APPLICABLE
    ),
    "ppo": Schema(
        toolkit=TOOLKIT_FIELDS, algorithm=PPO_FIELDS, not_applicable=ON_POLICY_NOT_APPLICABLE
    ),
    "qrdqn": Schema(
        toolkit=TOOLKIT_FIELDS,
        algorithm={
            **_Q_LEARNING_FIELDS,
            "max_grad_norm": Field(
                number(low=0, low_open=True, optional=True), "gradient norm clip (null: none)"
            ),
            "policy_kwargs": Field(
                nested(
                    {
                        **_COMMON_POLICY_KWARGS,
                        "n_quantiles": Field(integer(low=1, high=1000), "quantiles per action"),
                    }
                ),
                "network and optimizer settings",
            ),
        },
        not_applicable=MappingProxyType(
            {"loss": "QR-DQN always minimises the quantile Huber loss of its paper"}
        ),
    ),
    "c51": Schema(
        toolkit=TOOLKIT_FIELDS,
        algorithm={
            **_Q_LEARNING_FIELDS,
            "n_atoms": Field(integer(low=2, high=1000), "C51: atoms of each return distribution"),
            "v_min": Field(number(), "C51: the lowest atom (below v_max)"),
            "v_max": Field(number(), "C51: the highest atom (above v_min)"),
            "max_grad_norm": Field(
                number(low=0, low_open=True, optional=True), "gradient norm clip (null: none)"
            ),
            "policy_kwargs": Field(nested(_COMMON_POLICY_KWARGS), "network and optimizer settings"),
        },
        not_applicable=MappingProxyType(
            {"loss": "C51 always minimises the cross-entropy to its projected target"}
        ),
    ),
    # sb3-contrib's RecurrentPPO and TRPO, under rl_zoo3's names
    "ppo_lstm": Schema(
        toolkit={**TOOLKIT_FIELDS, "policy": RECURRENT_POLICY},
        algorithm=PPO_LSTM_FIELDS,
        not_applicable=ON_POLICY_NOT_APPLICABLE,
    ),
    "trpo": Schema(
        toolkit=TOOLKIT_FIELDS, algorithm=TRPO_FIELDS, not_applicable=TRPO_NOT_APPLICABLE
    ),
}


def toolkit_defaults(env_kind: str) -> dict[str, Any]:
    """The declared defaults of the toolkit keys for an env of `env_kind` (EnvSpec.kind)."""
    defaults = {key: spec.default_for(env_kind) for key, spec in TOOLKIT_FIELDS.items()}
    return {key: value for key, value in defaults.items() if value is not NO_DEFAULT}


def _all_fields() -> dict[str, Field]:
    return {key: spec for schema in SCHEMAS.values() for key, spec in schema.fields.items()}


# Old key -> its name now, from the declarations' `renamed_from`.
RENAMED_KEYS: Mapping[str, str] = MappingProxyType(
    {old: key for key, spec in _all_fields().items() for old in spec.renamed_from}
)

# Keys whose value may be a schedule; a `type` in a mapping value replaces the whole schedule.
SCHEDULE_KEYS: tuple[str, ...] = tuple(
    key for key, spec in _all_fields().items() if spec.check.is_schedule
)
