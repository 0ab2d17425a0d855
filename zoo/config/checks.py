"""The checks of a merged configuration that span several keys (a key's own range is its
`Field`'s): replay buffer and its settings, the ALE backend, minibatches, the network. Each
failure names the layer each key came from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from zoo.core.errors import UserError
from zoo.envs.ale_vec_env import ale_env_kwargs, ale_vector_available
from zoo.envs.stack import EnvSpec, has_image_observations


def check_combinations(
    hyperparams: Mapping[str, Any], origins: Mapping[str, str], env: EnvSpec
) -> None:
    def fail(key: str, message: str) -> None:
        origin = origins.get(key, "defaults")
        raise UserError(f"{origin}: key {key!r}: {message}")

    _check_policy(hyperparams, env, fail)
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
    _check_support(hyperparams, origins, fail)
    if hyperparams.get("augmentation") is not None and hyperparams["policy"] != "CnnPolicy":
        fail(
            "augmentation",
            f"{hyperparams['augmentation']} shifts pixel images; {hyperparams['policy']} "
            "has none (set augmentation: null)",
        )
    if "n_epochs" in hyperparams:
        _check_minibatches(hyperparams, origins, fail)
    record_every, n_envs = hyperparams.get("record_every", 0), hyperparams.get("n_envs", 1)
    if 0 < record_every < n_envs:  # the envs step together: a recording every step at most
        fail(
            "record_every",
            f"{record_every} is below n_envs ({n_envs}), the agent steps of one step of the "
            f"envs; give 0 (never) or at least {n_envs}",
        )
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
            "eval_actions",
            "sampled needs a policy that samples its actions (a2c, ppo, ppo_lstm, trpo); use greedy",
        )
    replay_kwargs = hyperparams.get("replay_buffer_kwargs") or {}
    if hyperparams.get("optimize_memory_usage") and replay_kwargs.get(
        "handle_timeout_termination", True
    ):
        fail(
            "optimize_memory_usage",
            "SB3's replay buffer needs replay_buffer_kwargs: {handle_timeout_termination: false} with it",
        )


def _check_support(
    hyperparams: Mapping[str, Any], origins: Mapping[str, str], fail: Callable[[str, str], None]
) -> None:
    """C51's atoms run from v_min up to v_max."""
    if "v_min" in hyperparams and hyperparams["v_min"] >= hyperparams["v_max"]:
        fail(
            "v_min",
            f"{hyperparams['v_min']:g} is not below v_max ({hyperparams['v_max']:g}, from "
            f"{origins.get('v_max', 'defaults')}); the atoms run from v_min up to v_max",
        )


def _check_policy(
    hyperparams: Mapping[str, Any], env: EnvSpec, fail: Callable[[str, str], None]
) -> None:
    policy = str(hyperparams["policy"])
    if policy.startswith("Cnn") and not has_image_observations(env):
        mlp = policy.replace("Cnn", "Mlp", 1)
        fail("policy", f"{policy} needs image observations, {env.name} has none; use {mlp}")
    if policy.endswith("LstmPolicy"):
        _check_recurrent_policy(hyperparams, fail)


def _check_recurrent_policy(
    hyperparams: Mapping[str, Any], fail: Callable[[str, str], None]
) -> None:
    """ppo_lstm's critic: an LSTM of its own, the actor's, or none; with none it needs stacked
    frames, or it values a single frame with no memory of the ones before."""
    policy_kwargs = hyperparams.get("policy_kwargs") or {}
    shared = bool(policy_kwargs.get("shared_lstm", False))
    own = bool(policy_kwargs.get("enable_critic_lstm", True))
    if shared and own:
        fail(
            "policy_kwargs",
            "shared_lstm: true gives the critic the actor's LSTM; set enable_critic_lstm: "
            "false with it (the critic has one LSTM at most)",
        )
    if shared and not policy_kwargs.get("share_features_extractor", True):
        fail("policy_kwargs", "shared_lstm: true needs share_features_extractor: true")
    if hyperparams["frame_stack"] == 1 and not (shared or own):
        fail(
            "frame_stack",
            "1 with no LSTM for the critic (policy_kwargs enable_critic_lstm and shared_lstm "
            "both false): the value function would see one frame and remember none; stack "
            "frames (frame_stack: 4, as rl_zoo3's Atari setting) or set "
            "policy_kwargs.enable_critic_lstm: true",
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
    """PPO (and ppo_lstm) with minibatches that do not divide its rollout: each epoch ends
    with a short one; TRPO's critic passes likewise."""
    if "batch_size" not in hyperparams or "buffer_size" in hyperparams:
        return None  # A2C takes the whole rollout; DQN's batches come from its replay buffer
    rollout = int(hyperparams["n_steps"]) * int(hyperparams["n_envs"])
    batch_size = int(hyperparams["batch_size"])
    if rollout % batch_size == 0:
        return None
    passes = "epoch" if "n_epochs" in hyperparams else "critic pass"
    return (
        f"note: batch_size {batch_size} does not divide a rollout of n_steps x n_envs = "
        f"{rollout}: each {passes} ends with a minibatch of {rollout % batch_size}"
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
