"""The temporal-difference update of zoo's DQN-like algorithms (DQN, QR-DQN, C51): a mixin that
replaces SB3's gradient phase, the loss choices, the next-state values of Double Q-learning
(the online network picks the next action, the target network values it) for Q-values and
quantiles, and prioritized replay's importance-weighted losses.

`replay_buffer="frames"` stores pixel frames once (zoo/replay/frame_buffer.py), n-step returns
included; `"sb3"` keeps SB3's own buffers. `prioritized_replay` draws from the frame buffer
by priority (zoo/replay/prioritized.py) and weights the losses by importance.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch as th
import torch.nn.functional as F
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from zoo.algorithms.augmentation import AUGMENTATIONS
from zoo.algorithms.compiled_update import (
    AUTO,
    LearningRateTensors,
    compile_failure,
    compiled,
    is_compile_error,
    wants_compiling,
)
from zoo.algorithms.noisy import DEFAULT_SIGMA0
from zoo.algorithms.q_networks import NETWORKS, variant_policy_kwargs
from zoo.core.errors import UserError, first_line
from zoo.replay.frame_buffer import FrameReplayBuffer
from zoo.replay.prioritized import PrioritizedFrameReplayBuffer
from zoo.schema.names import FRAME_STORES
from zoo.schema.schedules import Schedule

# Each takes (input, target, reduction="mean"|"none").
TD_LOSSES: Mapping[str, Callable[..., th.Tensor]] = {
    "huber": F.smooth_l1_loss,  # Huber with delta 1: the 2015 paper's error clipping
    "mse": F.mse_loss,
}

# Importance-sampling exponent of prioritized replay when no schedule was given (Schaul et
# al. 2016 anneal it from 0.4 to 1; zoo's configs do so over the run).
DEFAULT_PRIORITY_BETA = 0.4

# `replay_buffer`: the class that stores transitions (None: SB3 picks its own, n-step or not).
REPLAY_BUFFER_CLASSES: Mapping[str, type[FrameReplayBuffer] | None] = {
    "frames": FrameReplayBuffer,
    "sb3": None,
}

# On CUDA, losses are read back for logging once per this many updates: reading one is a
# host-device synchronisation. On the CPU each phase's losses are read at once.
LOSS_READ_INTERVAL_CUDA = 100


def next_q_values(
    online: Callable[[th.Tensor], th.Tensor],
    target: Callable[[th.Tensor], th.Tensor],
    next_observations: th.Tensor,
    double_q: bool,
) -> th.Tensor:
    """Value of the greedy next action, shape (batch, 1): chosen by the target network itself
    (DQN) or by the online network (Double DQN), valued by the target network either way.
    A target that is the online network itself is asked once."""
    target_q = target(next_observations)
    chooser = online(next_observations) if double_q and online is not target else target_q
    return target_q.gather(dim=1, index=chooser.argmax(dim=1, keepdim=True))


def next_quantiles(
    online: Callable[[th.Tensor], th.Tensor],
    target: Callable[[th.Tensor], th.Tensor],
    next_observations: th.Tensor,
    double_q: bool,
) -> th.Tensor:
    """Target quantiles (batch, n_quantiles) of the greedy next action (by mean over quantiles),
    chosen by the target network or, for Double QR-DQN, by the online network."""
    target_quantiles = target(next_observations)  # (batch, n_quantiles, n_actions)
    chooser = online(next_observations) if double_q and online is not target else target_quantiles
    greedy = chooser.mean(dim=1, keepdim=True).argmax(dim=2, keepdim=True)
    greedy = greedy.expand(-1, target_quantiles.shape[1], 1)
    return target_quantiles.gather(dim=2, index=greedy).squeeze(dim=2)


def quantile_huber_losses(current: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """sb3-contrib's quantile Huber loss (summed over quantiles) of each transition,
    shape (batch,); their mean is sb3-contrib's `quantile_huber_loss`."""
    n_quantiles = current.shape[-1]
    tau = (th.arange(n_quantiles, device=current.device, dtype=th.float) + 0.5) / n_quantiles
    delta = targets.unsqueeze(-2) - current.unsqueeze(-1)  # (batch, current, target)
    huber = th.where(delta.abs() > 1, delta.abs() - 0.5, delta**2 * 0.5)
    weighted = th.abs(tau.view(1, -1, 1) - (delta.detach() < 0).float()) * huber
    return weighted.sum(dim=-2).mean(dim=-1)


def noisy_policy_settings(
    kwargs: dict[str, Any], noisy_sigma: float, noisy_eval: str
) -> dict[str, Any]:
    """The policy's noisy-net settings; noisy nets explore in place of epsilon-greedy
    (Rainbow), so the algorithm's epsilon becomes 0 where `kwargs` gives none."""
    for key in ("exploration_initial_eps", "exploration_final_eps"):
        if kwargs.setdefault(key, 0.0) != 0:
            raise ValueError(
                f"noisy nets explore with epsilon 0; {key}={kwargs[key]} contradicts it"
            )
    return {"noisy": True, "noisy_sigma": noisy_sigma, "noisy_eval": noisy_eval}


class TemporalDifferenceTraining:
    """Mixin replacing SB3's gradient phase of DQN-like algorithms by one that asks `td_loss`
    for the loss of a sampled batch; everything around it is as in SB3.

    Gradient steps wait until the buffer holds `learning_starts` transitions, which only
    matters when a run resumes without its saved buffer. With `random_warmup` false the
    policy (with its epsilon) acts before `learning_starts` instead of uniform random play.
    `replay_buffer` names the buffer (REPLAY_BUFFER_CLASSES); the frame buffer gets `n_steps`
    and `gamma` from the algorithm, as SB3 gives them to its n-step buffer.
    `prioritized_replay` (frame buffer only) draws by priority with exponent
    `priority_alpha`, weights each loss by its importance weight (exponent:
    `priority_beta_schedule` of the global step) and sets priorities to the per-sample
    errors of `td_losses` plus `priority_epsilon`.
    `augmentation` (zoo/algorithms/augmentation.py) transforms the observations and next observations
    of every sampled pixel batch, each with its own random draws.
    """

    policy: Any
    replay_buffer: Any
    logger: Any
    max_grad_norm: Any  # float in SB3's DQN, float | None in QR-DQN (None: no clipping)
    learning_starts: int
    gamma: float
    n_steps: int
    replay_buffer_class: type[Any] | None
    replay_buffer_kwargs: dict[str, Any]
    random_warmup: bool = True
    prioritized_replay: bool = False
    augmentation: str | None = None
    compile: bool | str = AUTO
    compiles_update: bool | None = None
    online_as_target: bool = False  # this gradient step's target network is the online one
    noisy: bool = False  # zips saved before noisy nets have none
    observation_space: Any
    device: th.device
    priority_beta_schedule: Schedule | None
    num_timesteps: int
    _n_updates: int
    _vec_normalize_env: Any
    _update_learning_rate: Callable[[Any], None]

    def __init__(
        self,
        *args: Any,
        double_q: bool = False,
        dueling: bool = False,
        network: str | None = None,
        noisy: bool = False,
        noisy_sigma: float = DEFAULT_SIGMA0,
        noisy_eval: str = "mean",
        random_warmup: bool = True,
        replay_buffer: str = "sb3",
        prioritized_replay: bool = False,
        priority_alpha: float = 0.6,
        priority_epsilon: float = 1e-6,
        frame_store: str = "host",
        priority_beta_schedule: Schedule | None = None,
        augmentation: str | None = None,
        compile: bool | str = AUTO,
        **kwargs: Any,
    ) -> None:
        if compile not in (True, False, AUTO):
            raise ValueError(f"compile is true, false or {AUTO!r}, not {compile!r}")
        self.compile = compile
        if augmentation is not None and augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augmentation {augmentation!r}; choose one of {', '.join(AUGMENTATIONS)}"
            )
        self.augmentation = augmentation
        if network is not None and network not in NETWORKS:
            raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
        if replay_buffer not in REPLAY_BUFFER_CLASSES:
            raise ValueError(
                f"unknown replay_buffer {replay_buffer!r}; choose one of {', '.join(REPLAY_BUFFER_CLASSES)}"
            )
        if frame_store not in FRAME_STORES:
            raise ValueError(
                f"unknown frame_store {frame_store!r}; choose one of {', '.join(FRAME_STORES)}"
            )
        self.double_q, self.dueling, self.network = double_q, dueling, network
        self.noisy = noisy
        noisy_settings = noisy_policy_settings(kwargs, noisy_sigma, noisy_eval) if noisy else None
        self.random_warmup = random_warmup
        self.priority_beta_schedule = priority_beta_schedule
        buffer_class = REPLAY_BUFFER_CLASSES[replay_buffer]
        self.prioritized_replay = prioritized_replay
        if prioritized_replay:
            if buffer_class is not FrameReplayBuffer:
                raise ValueError("prioritized_replay needs replay_buffer='frames'")
            buffer_class = PrioritizedFrameReplayBuffer
            kwargs["replay_buffer_kwargs"] = {
                **(kwargs.get("replay_buffer_kwargs") or {}),
                "alpha": priority_alpha,
                "epsilon": priority_epsilon,
            }
        if frame_store == "device":
            if buffer_class is None:
                raise ValueError("frame_store='device' needs replay_buffer='frames'")
            kwargs["replay_buffer_kwargs"] = {
                **(kwargs.get("replay_buffer_kwargs") or {}),
                "frames_on_device": True,
            }
        if buffer_class is not None:
            if kwargs.get("replay_buffer_class") is not None:
                raise ValueError("give either replay_buffer or replay_buffer_class")
            kwargs["replay_buffer_class"] = buffer_class
        kwargs["policy_kwargs"] = variant_policy_kwargs(
            kwargs.get("policy_kwargs"), dueling, network, noisy_settings
        )
        super().__init__(*args, **kwargs)
        if kwargs.get("_init_setup_model", True):
            self.compiles_update = self._decide_compiling()
        if augmentation is not None and len(self.observation_space.shape) != 3:
            raise ValueError(
                f"augmentation {augmentation!r} shifts images; the observations here have shape "
                f"{self.observation_space.shape}"
            )

    def _setup_model(self) -> None:
        self._set_up_replay_and_networks()
        self._compiled_parts: tuple[Callable[..., Any], Callable[[], None]] | None = None
        self._learning_rates: LearningRateTensors | None = None
        self._unread_losses: list[th.Tensor] = []
        # None: decided at the first update (a loaded model), so watching a model trained
        # with compile: true needs no compiler; a new model decides when built.
        self.compiles_update = None

    def _set_up_replay_and_networks(self) -> None:
        buffer_class = self.replay_buffer_class
        if buffer_class is None or not issubclass(buffer_class, FrameReplayBuffer):
            super()._setup_model()  # type: ignore[misc]
            return
        self.replay_buffer_kwargs.update({"n_steps": self.n_steps, "gamma": self.gamma})
        with warnings.catch_warnings():
            # SB3 warns that it sets up n-step returns only for its own buffer; this one
            # has just been given them.
            warnings.filterwarnings("ignore", message=r".*is ignored because a custom")
            super()._setup_model()  # type: ignore[misc]

    def _decide_compiling(self) -> bool:
        """Whether the update is compiled here; `compile: true` where torch.compile cannot
        work is refused in one line, `auto` then stays eager with a warning."""
        if not wants_compiling(self.compile, self.device):
            return False
        failure = compile_failure(self.device.type)
        if failure is None:
            return True
        if self.compile is True:
            raise UserError(
                f"compile: true, but torch.compile cannot compile on {self.device.type} here "
                f"({failure}); set compile: false (or auto)"
            )
        warnings.warn(
            f"the TD update stays eager: torch.compile fails here ({failure})", stacklevel=2
        )
        return False

    def _excluded_save_params(self) -> list[str]:
        # Compiled code and tensors of this process, rebuilt after loading.
        return [
            *super()._excluded_save_params(),  # type: ignore[misc]
            "_compiled_parts",
            "_learning_rates",
            "_unread_losses",
            "compiles_update",
        ]

    def td_loss(self, batch: ReplayBufferSamples) -> th.Tensor:
        raise NotImplementedError

    def td_losses(self, batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        """Per transition: the loss (batch,) and the error its priority is made of."""
        raise NotImplementedError

    def _stored_transitions(self) -> int:
        return int(self.replay_buffer.size()) * int(self.replay_buffer.n_envs)

    def _transitions_before_learning(self) -> int:
        capacity = int(self.replay_buffer.buffer_size) * int(self.replay_buffer.n_envs)
        return max(1, min(int(self.learning_starts), capacity))

    def _sample_action(self, learning_starts: int, *args: Any, **kwargs: Any) -> Any:
        # random_warmup false (a warm start): the policy acts while the buffer fills.
        if not self.random_warmup:
            learning_starts = 0
        return super()._sample_action(learning_starts, *args, **kwargs)  # type: ignore[misc]

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> Any:
        # Acting while training (not deterministic) draws fresh noise at every step;
        # evaluation (deterministic) follows the policy's evaluation mode (noisy_eval).
        act = super().predict  # type: ignore[misc]
        if not self.noisy or deterministic:
            return act(observation, state, episode_start, deterministic)
        with self.policy.noise_while_acting():
            return act(observation, state, episode_start, deterministic)

    def discounts(self, batch: ReplayBufferSamples) -> th.Tensor | float:
        """gamma, or gamma**k per sample from SB3's n-step buffer (k < n when a game ended)."""
        return batch.discounts if batch.discounts is not None else self.gamma

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self._stored_transitions() < self._transitions_before_learning():
            return  # a run resumed without its replay buffer refills it first
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        update = self._update_function()
        prioritized = isinstance(self.replay_buffer, PrioritizedFrameReplayBuffer)
        for step in range(gradient_steps):
            # Only the first step of a phase can find the target just copied from the online
            # network (after a step it has moved).
            self.online_as_target = step == 0 and self.target_holds_online_weights()
            if prioritized:
                beta = self.priority_beta()
                self.logger.record("train/priority_beta", beta)
                batch, leaves, weights = self.replay_buffer.sample_prioritized(
                    batch_size, beta, env=self._vec_normalize_env
                )
                loss, errors = update(self.augmented(batch), weights)
                self.replay_buffer.update_priorities(leaves, errors)
            else:
                batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                loss, _ = update(self.augmented(batch), None)
            self._unread_losses.append(loss)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self._record_losses()

    def gradient_step(
        self, batch: ReplayBufferSamples, weights: th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """One update from `batch`: its loss (importance-weighted by `weights` when given),
        the backward pass, clipping and the optimizer step. Returns the loss and, with
        weights, each transition's error for its new priority. Compiled, the loss (with its
        backward graph) and the optimizer step are each one compiled function: the backward
        pass between them is where a compiled graph ends."""
        batch_loss, optimizer_step = self._compiled_parts or (self.batch_loss, self.optimizer_step)
        loss, errors = batch_loss(batch, weights)
        self.policy.optimizer.zero_grad()
        loss.backward()
        optimizer_step()
        return loss.detach(), errors

    def batch_loss(
        self, batch: ReplayBufferSamples, weights: th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor | None]:
        if weights is None:
            return self.td_loss(batch), None
        losses, errors = self.td_losses(batch)
        return (weights[:, 0] * losses).mean(), errors

    def optimizer_step(self) -> None:
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()

    def _update_function(self) -> Callable[..., tuple[th.Tensor, th.Tensor | None]]:
        """`gradient_step`, eager or with its compiled parts (built on first use, with
        learning-rate tensors refilled from what the schedule has just set)."""
        if self.compiles_update is None:
            self.compiles_update = self._decide_compiling()
        if not self.compiles_update:
            return self.gradient_step
        optimizer = self.policy.optimizer
        if self._compiled_parts is None:
            self._learning_rates = LearningRateTensors(optimizer, self.device)
            self._compiled_parts = (
                compiled(self.batch_loss, self.device),
                compiled(self.optimizer_step, self.device),
            )
        assert self._learning_rates is not None
        self._learning_rates.refill(optimizer)
        return self._compiled_or_refused

    def _compiled_or_refused(
        self, batch: ReplayBufferSamples, weights: th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor | None]:
        try:
            return self.gradient_step(batch, weights)
        except Exception as error:
            if not is_compile_error(error):
                raise
            raise UserError(
                f"torch.compile failed on the TD update ({first_line(error)}); set compile: false"
            ) from None

    def _record_losses(self) -> None:
        """Log the mean loss of the updates not yet read: at every phase on the CPU, every
        LOSS_READ_INTERVAL_CUDA updates on CUDA."""
        unread = self._unread_losses
        if self.device.type == "cuda" and len(unread) < LOSS_READ_INTERVAL_CUDA:
            return
        self.logger.record("train/loss", float(th.stack(unread).mean()))
        unread.clear()

    def online_and_target(self) -> tuple[th.nn.Module, th.nn.Module]:
        raise NotImplementedError

    def target_holds_online_weights(self) -> bool:
        """Whether the target network's weights are the online network's (SB3 copies them
        after each step when tau is 1 and target_update_interval 1, as in drq_eps). Its
        forward pass then gives the online network's values, so the update asks the online
        network once instead of both: comparing the weights costs far less than a forward
        pass. (The networks hold no batch statistics, so equal weights give equal values in
        training and in evaluation mode.) Noisy networks never count: each forward pass
        draws its own noise, the target's too."""
        if self.noisy:
            return False
        online, target = self.online_and_target()
        return all(
            th.equal(mine, theirs)
            for mine, theirs in zip(
                online.state_dict().values(), target.state_dict().values(), strict=True
            )
        )

    def augmented(self, batch: ReplayBufferSamples) -> ReplayBufferSamples:
        """The batch with its observations and next observations augmented apart."""
        if self.augmentation is None:
            return batch
        augment = AUGMENTATIONS[self.augmentation]
        return batch._replace(
            observations=augment(batch.observations),
            next_observations=augment(batch.next_observations),
        )

    def priority_beta(self) -> float:
        schedule = self.priority_beta_schedule
        return DEFAULT_PRIORITY_BETA if schedule is None else schedule.value(self.num_timesteps)
