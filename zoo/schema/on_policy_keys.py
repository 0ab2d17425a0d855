"""The keys of the on-policy actor-critics: SB3's A2C and PPO, sb3-contrib's RecurrentPPO
(`ppo_lstm`) and TRPO. Each is a keyword argument of the algorithm's constructor, which gives
its default (zoo/schema/keys.py puts them into `SCHEMAS`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from zoo.schema import names
from zoo.schema.fields import (
    Field,
    boolean,
    choice,
    integer,
    nested,
    number,
    optional,
    scalar_mapping,
    schedule,
)
from zoo.schema.policy_fields import CHANNELS_LAST, COMMON_POLICY_KWARGS, FUSED_ADAM

ACTOR_CRITIC_POLICY_KWARGS: Mapping[str, Field] = {
    **COMMON_POLICY_KWARGS,
    "ortho_init": Field(boolean, "orthogonal initialisation of the weights"),
    "share_features_extractor": Field(boolean, "actor and critic share one features extractor"),
    "log_std_init": Field(number(), "initial log standard deviation (continuous actions)"),
}

# RecurrentActorCriticPolicy's own arguments: the actor always has an LSTM; the critic has
# its own (enable_critic_lstm), the actor's (shared_lstm) or none (both false).
LSTM_POLICY_KWARGS: Mapping[str, Field] = {
    "lstm_hidden_size": Field(integer(low=1, high=65_536), "units of each LSTM layer"),
    "n_lstm_layers": Field(integer(low=1, high=64), "stacked LSTM layers"),
    "enable_critic_lstm": Field(boolean, "the critic has an LSTM of its own"),
    "shared_lstm": Field(
        boolean, "the critic uses the actor's LSTM (needs enable_critic_lstm: false)"
    ),
    "lstm_kwargs": Field(scalar_mapping, "extra arguments of torch.nn.LSTM"),
}

# `policy` of ppo_lstm: sb3-contrib's recurrent policies (rl_zoo3's names).
RECURRENT_POLICY = Field(
    choice(names.RECURRENT_POLICIES), "sb3-contrib recurrent policy name", default="MlpLstmPolicy"
)


def actor_critic(
    rollout: Mapping[str, Field],
    own: Mapping[str, Field],
    policy_kwargs: Mapping[str, Field] = ACTOR_CRITIC_POLICY_KWARGS,
) -> dict[str, Field]:
    """The keys of an SB3 on-policy actor-critic (A2C, PPO): the shared ones around the
    algorithm's `rollout` keys (after the learning rate) and `own` keys (before the tail)."""
    return {
        "channels_last": CHANNELS_LAST,
        "fused_adam": FUSED_ADAM,
        "learning_rate": Field(schedule(low=0), "optimizer step size: a number or a schedule"),
        **rollout,
        "gamma": Field(number(low=0, high=1), "discount factor"),
        "gae_lambda": Field(number(low=0, high=1), "GAE lambda (1 = plain n-step returns)"),
        "ent_coef": Field(number(low=0), "entropy bonus weight"),
        "vf_coef": Field(number(low=0), "value loss weight"),
        "max_grad_norm": Field(number(low=0, low_open=True), "gradient norm clip"),
        **own,
        "stats_window_size": Field(integer(low=1), "episodes averaged in logged statistics"),
        "policy_kwargs": Field(nested(policy_kwargs), "network and optimizer settings"),
    }


# Keys of the replay-based algorithms that an on-policy one refuses with a reason.
ON_POLICY_NOT_APPLICABLE: Mapping[str, str] = MappingProxyType(
    {
        "augmentation": "it augments batches drawn from a replay buffer (dqn, qrdqn, c51)",
        "compile": "it compiles the TD update of dqn, qrdqn and c51",
    }
)

A2C_FIELDS = actor_critic(
    rollout={
        "n_steps": Field(
            integer(low=1, high=100_000), "rollout length per env (the n of n-step returns)"
        ),
    },
    own={
        "rms_prop_eps": Field(number(low=0, low_open=True), "RMSprop epsilon (when use_rms_prop)"),
        "use_rms_prop": Field(boolean, "RMSprop instead of Adam"),
        "normalize_advantage": Field(boolean, "normalise advantages per rollout"),
    },
)

_PPO_ROLLOUT: Mapping[str, Field] = {
    "n_steps": Field(integer(low=1, high=100_000), "rollout length per env"),
    "batch_size": Field(
        integer(low=1), "minibatch size; a factor of the rollout, n_steps x n_envs"
    ),
    "n_epochs": Field(integer(low=1, high=1000), "passes over each rollout"),
    "clip_range": Field(
        schedule(low=0, high=1), "policy ratio clipped to [1 - c, 1 + c]: a number or a schedule"
    ),
    "clip_range_vf": Field(
        optional(schedule(low=0, start_above_low=True)),
        "value change clipped to +-c: a number or a schedule (null: no clipping; depends on "
        "the reward scale)",
    ),
    "target_kl": Field(
        number(low=0, low_open=True, optional=True),
        "a rollout's epochs stop early past 1.5 x this KL divergence (null: never)",
    ),
}
_PPO_OWN: Mapping[str, Field] = {
    "normalize_advantage": Field(boolean, "normalise advantages per minibatch")
}

PPO_FIELDS = actor_critic(rollout=_PPO_ROLLOUT, own=_PPO_OWN)

PPO_LSTM_FIELDS = actor_critic(
    rollout=_PPO_ROLLOUT,
    own=_PPO_OWN,
    policy_kwargs={**ACTOR_CRITIC_POLICY_KWARGS, **LSTM_POLICY_KWARGS},
)

TRPO_FIELDS: Mapping[str, Field] = {
    "channels_last": CHANNELS_LAST,
    "fused_adam": FUSED_ADAM,
    "learning_rate": Field(
        schedule(low=0), "the critic's optimizer step size: a number or a schedule"
    ),
    "n_steps": Field(integer(low=1, high=100_000), "rollout length per env"),
    "batch_size": Field(integer(low=1), "minibatch size of the critic's updates"),
    "gamma": Field(number(low=0, high=1), "discount factor"),
    "gae_lambda": Field(number(low=0, high=1), "GAE lambda (1 = plain n-step returns)"),
    "target_kl": Field(
        number(low=0, low_open=True), "the trust region: KL divergence bound of each policy step"
    ),
    "cg_max_steps": Field(integer(low=1, high=1000), "conjugate gradient steps per update"),
    "cg_damping": Field(number(low=0), "damping of the Hessian-vector products"),
    "line_search_shrinking_factor": Field(
        number(low=0, high=1, low_open=True), "step shrink per line-search iteration"
    ),
    "line_search_max_iter": Field(integer(low=1, high=1000), "line-search iterations at most"),
    "n_critic_updates": Field(integer(low=1, high=1000), "critic passes over each rollout"),
    "normalize_advantage": Field(boolean, "normalise advantages per rollout"),
    "sub_sampling_factor": Field(
        integer(low=1), "policy step on every k-th transition of the rollout (1: all)"
    ),
    "stats_window_size": Field(integer(low=1), "episodes averaged in logged statistics"),
    "policy_kwargs": Field(nested(ACTOR_CRITIC_POLICY_KWARGS), "network and optimizer settings"),
}

TRPO_NOT_APPLICABLE: Mapping[str, str] = MappingProxyType(
    {
        **ON_POLICY_NOT_APPLICABLE,
        "ent_coef": "TRPO has no entropy bonus",
        "vf_coef": "TRPO fits its critic apart (n_critic_updates, learning_rate)",
        "max_grad_norm": "TRPO bounds its policy step by target_kl",
        "clip_range": "TRPO bounds its policy step by target_kl, not by a clipped ratio",
        "n_epochs": "TRPO takes one trust-region step per rollout (critic: n_critic_updates)",
    }
)
