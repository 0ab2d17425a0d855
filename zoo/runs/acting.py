"""How an agent picks its actions in evaluation games: greedy or sampled from the policy,
epsilon-greedy on top, and for a recurrent policy (ppo_lstm) the LSTM state each game carries
from one step to the next.

`EpsilonGreedy` serves SB3's `evaluate_policy` (games one after another, enjoy), which passes
the LSTM state and the episode starts itself; `ActionChooser` serves `GameTable` (games side
by side), where each game keeps its own `GameMemory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy

from zoo.core.errors import UserError

# A recurrent policy's actor LSTM state for one game: (hidden, cell), each (layers, 1, units).
LstmState = tuple[np.ndarray, np.ndarray]


@dataclass
class GameMemory:
    """What a recurrent policy carries from one step of a game to the next: its LSTM state
    (None: zeros) and whether the next step starts an episode, where the policy resets the
    state as in training (SB3's episode_start: after the env's done, a game start or, with
    terminal_on_life_loss, a lost life)."""

    state: LstmState | None = None
    episode_start: bool = True


class EpsilonGreedy:
    """The model's greedy (or, with `sampled`, sampled) action, replaced by a random one
    with probability `epsilon`."""

    def __init__(
        self, model: BaseAlgorithm, epsilon: float, seed: int, sampled: bool = False
    ) -> None:
        self.model = model
        self.epsilon = epsilon
        self.sampled = sampled
        self.rng = np.random.default_rng(seed)
        assert isinstance(model.action_space, spaces.Discrete)
        self.n_actions = int(model.action_space.n)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        actions, state = self.model.predict(
            observation, state, episode_start, deterministic=not self.sampled
        )
        if self.epsilon > 0:
            explore = self.rng.random(len(actions)) < self.epsilon
            actions = np.where(
                explore, self.rng.integers(self.n_actions, size=len(actions)), actions
            )
        return actions, state


class ActionChooser:
    """Actions for a batch of games from one network call: greedy, or sampled from the
    policy's distribution (actor-critic algos), then replaced by a random action with
    probability `epsilon`. Each game draws its random numbers from its own generator and, with
    a recurrent policy, carries its own `GameMemory`, so a game's actions do not depend on
    which other games share its batch."""

    def __init__(self, model: BaseAlgorithm, epsilon: float, sampled: bool) -> None:
        if sampled and not isinstance(model.policy, ActorCriticPolicy):
            raise UserError(
                f"eval_actions sampled needs a policy that samples its actions (a2c, ppo, "
                f"ppo_lstm, trpo); {type(model).__name__} acts greedily: use eval_actions greedy"
            )
        assert isinstance(model.action_space, spaces.Discrete)
        self.model = model
        self.epsilon = epsilon
        self.sampled = sampled
        self.n_actions = int(model.action_space.n)
        self.recurrent = isinstance(model.policy, RecurrentActorCriticPolicy)

    def __call__(
        self,
        observations: np.ndarray,
        rngs: Sequence[np.random.Generator],
        memories: Sequence[GameMemory] | None = None,
    ) -> np.ndarray:
        """One action per game; a recurrent policy reads and updates each game's memory
        (None: games without one, each step as a game's first)."""
        if self.recurrent:
            games = list(memories) if memories is not None else [GameMemory() for _ in rngs]
            actions = self._recurrent(observations, rngs, games)
        elif self.sampled:
            actions = self._sample(observations, rngs)
        else:
            actions, _ = self.model.predict(observations, deterministic=True)
            actions = np.asarray(actions).reshape(-1)
        if self.epsilon > 0:
            for game, rng in enumerate(rngs):
                if rng.random() < self.epsilon:
                    actions[game] = rng.integers(self.n_actions)
        return actions

    def _sample(self, observations: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        policy = self.model.policy
        assert isinstance(policy, ActorCriticPolicy)
        with th.no_grad():
            tensor, _ = policy.obs_to_tensor(observations)
            distribution = policy.get_distribution(tensor)
        return self._draw(distribution, rngs)

    def _recurrent(
        self,
        observations: np.ndarray,
        rngs: Sequence[np.random.Generator],
        memories: Sequence[GameMemory],
    ) -> np.ndarray:
        """The actions of a recurrent policy from the games' LSTM states, each game's new
        state put back into its memory."""
        policy = self.model.policy
        assert isinstance(policy, RecurrentActorCriticPolicy)
        zeros = np.zeros(policy.lstm_hidden_state_shape, dtype=np.float32)
        hidden = np.concatenate([m.state[0] if m.state else zeros for m in memories], axis=1)
        cell = np.concatenate([m.state[1] if m.state else zeros for m in memories], axis=1)
        starts = np.array([m.episode_start for m in memories], dtype=bool)
        if self.sampled:
            policy.set_training_mode(False)
            with th.no_grad():
                tensor, _ = policy.obs_to_tensor(observations)
                assert isinstance(tensor, th.Tensor)  # Atari and Box observations
                device = policy.device
                state = (th.as_tensor(hidden, device=device), th.as_tensor(cell, device=device))
                start = th.as_tensor(starts, dtype=th.float32, device=device)
                distribution, (new_hidden, new_cell) = policy.get_distribution(tensor, state, start)
            actions = self._draw(distribution, rngs)
            hidden, cell = new_hidden.cpu().numpy(), new_cell.cpu().numpy()
        else:
            chosen, states = self.model.predict(
                observations, state=(hidden, cell), episode_start=starts, deterministic=True
            )
            assert states is not None
            actions = np.asarray(chosen).reshape(-1)
            hidden, cell = states[0], states[1]
        for game, memory in enumerate(memories):
            memory.state = (hidden[:, game : game + 1], cell[:, game : game + 1])
            memory.episode_start = False
        return actions

    def _draw(self, distribution: Any, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """One action per game from the policy's categorical distribution, each drawn with
        its game's generator."""
        probabilities = distribution.distribution.probs.double().cpu().numpy()
        cumulative = np.cumsum(probabilities, axis=1)
        draws = np.array([rng.random() for rng in rngs]) * cumulative[:, -1]
        actions = [
            int(np.searchsorted(row, u, side="right"))
            for row, u in zip(cumulative, draws, strict=True)
        ]
        return np.minimum(np.array(actions, dtype=np.int64), self.n_actions - 1)
