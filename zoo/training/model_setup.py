"""The model a run trains: the checks before it is built (device, action space), built fresh
from the config, loaded from a checkpoint of the run with its replay buffer (`--resume`), or
fresh with another model's weights (`--init-from`); and the disk room its checkpoints' replay
buffers will take.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from zoo.algorithms import registry
from zoo.algorithms.model_loading import TRAINED_ON, load_algorithm, reason_of
from zoo.config.config import Config
from zoo.core.errors import UserError, first_line
from zoo.envs.stack import make_env
from zoo.runs.checkpoints import Checkpoint, check_room_for_replay_buffers, replay_buffer_bytes
from zoo.runs.folders import Run


@dataclass(frozen=True)
class StartPoint:
    """Where training starts: fresh, or continuing this run from `checkpoint` (`resumed`),
    with `total_timesteps` as the run's total, or fresh with the weights of `init_weights`."""

    resumed: bool = False
    checkpoint: Checkpoint | None = None
    total_timesteps: int | None = None
    init_weights: Path | None = None

    @property
    def step(self) -> int:
        return self.checkpoint.step if self.checkpoint is not None else 0


def resolve_device(requested: str) -> str:
    """The device the networks will really use ("auto" becomes "cuda" or "cpu")."""
    has_cuda = th.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise UserError(
            "--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu or auto"
        )
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


# What SB3, PyTorch and numpy raise for settings they cannot build (an optimizer argument
# out of range, a buffer that cannot be allocated): each is the user's to change.
_CONSTRUCTION_ERRORS = (MemoryError, ValueError, TypeError, OverflowError, RuntimeError)


def check_action_space(config: Config) -> None:
    """Refuse in one line an env whose actions the algorithm does not take (DQN on a
    continuous env); making the env here says in one line why it cannot be made."""
    if config.env.kind != "other":
        return  # Atari games: a Discrete action set, which every algorithm takes
    env = make_env(config.env, **config.env.make_kwargs())
    try:
        space = env.action_space
    finally:
        env.close()
    supported = registry.ACTION_SPACES[config.algo]
    if not isinstance(space, supported):
        names = " or ".join(kind.__name__ for kind in supported)
        able = [algo for algo, kinds in registry.ACTION_SPACES.items() if isinstance(space, kinds)]
        raise UserError(
            f"{config.algo} takes {names} action spaces, but {config.env.name} has {space}; "
            f"train it with {' or '.join(able) or 'another library'}"
        )


def build_model(config: Config, env: VecEnv, device: str) -> BaseAlgorithm:
    algorithm = registry.ALGORITHMS[config.algo]
    try:
        model = algorithm(
            config.policy,
            env,
            seed=config.seed,
            device=device,
            verbose=0,
            **config.algorithm_kwargs(),
        )
    except _CONSTRUCTION_ERRORS as error:
        raise UserError(
            f"cannot build the {config.algo} model with these settings: {first_line(error)}; "
            "change the hyperparameter it names (buffer_size, policy_kwargs, ...)"
        ) from None
    setattr(model, TRAINED_ON, config.env.name)  # saved in the zip: enjoy names the game
    return model


def starting_model(
    config: Config,
    env: VecEnv,
    start: StartPoint,
    device: str,
    warn: Callable[[str], None],
) -> BaseAlgorithm:
    """The model training starts from: built fresh (with `--init-from` weights), or loaded
    from the run's checkpoint with its replay buffer; `warn` says when that buffer is missing."""
    if start.checkpoint is None:
        model = build_model(config, env, device)
        if start.init_weights is not None:
            _load_weights(model, start.init_weights, device)
        return model
    checkpoint = start.checkpoint
    model = load_algorithm(
        registry.ALGORITHMS[config.algo],
        checkpoint.model_file,
        env,
        device,
        env_name=config.env.name,
    )
    # SB3 would go on from the observation saved in the zip; the env here is a new one.
    model._last_obs = None
    if isinstance(model, OffPolicyAlgorithm):
        buffer_file = checkpoint.replay_buffer_file
        if buffer_file is not None:
            model.load_replay_buffer(buffer_file)
            _end_stored_trajectories(model)
        elif config.replay is not None:
            why = (
                "only the newest checkpoint keeps it, and that one could not be used"
                if config.run.save_replay_buffer
                else "save_replay_buffer: false"
            )
            warn(
                f"note: checkpoint {checkpoint.path.name} has no replay buffer ({why}): "
                "learning restarts with an empty buffer and gradient steps resume once it "
                f"holds {model.learning_starts:,} transitions"
            )
    return model


def _end_stored_trajectories(model: OffPolicyAlgorithm) -> None:
    """Mark the newest stored transition of each env as truncated unless its episode ended:
    the game it belonged to is gone, so n-step returns must not run on into the first game
    after the resume. A real end stays one (a truncation would bootstrap from it), so the
    buffer samples what it sampled before the checkpoint, as SB3's n-step buffer cuts there."""
    buffer = model.replay_buffer
    if buffer is None or (buffer.pos == 0 and not buffer.full):
        return
    newest = (buffer.pos - 1) % buffer.buffer_size
    buffer.timeouts[newest] = np.logical_or(buffer.timeouts[newest], buffer.dones[newest] == 0)


def _load_weights(model: BaseAlgorithm, source: Path, device: str) -> None:
    try:
        model.set_parameters(str(source), exact_match=True, device=device)
    except pickle.UnpicklingError as error:
        raise UserError(f"--init-from {source}: {reason_of(error)}") from None
    except (RuntimeError, ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise UserError(
            f"--init-from {source}: its network does not fit this run's ({first_line}); "
            "use the same algo, policy, network and env"
        ) from None


def check_replay_buffer_room(
    model: BaseAlgorithm, config: Config, run: Run, say: Callable[[str], None], resumed: bool
) -> None:
    """Refuse a run whose checkpoints' replay buffers the disk cannot hold; `say` tells
    their size."""
    if not config.run.save_replay_buffer or not isinstance(model, OffPolicyAlgorithm):
        return
    size = replay_buffer_bytes(model)
    say(f"Checkpoints include the replay buffer: {size / 2**30:.2f} GiB each")
    if resumed:  # a resume takes the run's own config: no --set, the file is the place
        advice = f"free space, or set save_replay_buffer: false in {run.config_file}"
        check_room_for_replay_buffers(run.path, size, advice)
    else:
        check_room_for_replay_buffers(run.path, size)
