"""The RMSProp of DeepMind's DQN, for a loss that is a mean over the batch.

DeepMind's code (Mnih et al. 2015, `NeuralQLearner.lua`) keeps running averages of the
gradient and of its square, both starting at zero, with decay 0.95, and divides each step by
the centred root with 0.01 inside it:

    g  = 0.95 g  + 0.05 grad
    g2 = 0.95 g2 + 0.05 grad^2
    w -= lr * grad / sqrt(g2 - g^2 + 0.01)

Its loss sums over the batch of 32, so `grad` is 32 times the gradient of zoo's batch-mean
loss. Dividing numerator and root by 32 shows that the same steps come from the mean loss
with eps = 0.01 / 32^2 (about 1e-5, the epsilon of Dopamine's Nature config), which is this
optimizer's default. PyTorch's `RMSprop` adds eps outside the root, SB3's `RMSpropTFLike`
starts the squared average at one: neither takes DeepMind's steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch as th

# DeepMind's 0.01 for a loss summed over 32 transitions, for the batch-mean loss.
DEEPMIND_EPS_FOR_MEAN_LOSS = 0.01 / 32**2


class DeepMindRMSprop(th.optim.Optimizer):
    """Centred RMSProp with eps inside the square root and averages that start at zero."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2.5e-4,
        alpha: float = 0.95,
        eps: float = DEEPMIND_EPS_FOR_MEAN_LOSS,
    ) -> None:
        if lr <= 0 or not 0 <= alpha < 1 or eps <= 0:
            raise ValueError(f"need lr > 0, 0 <= alpha < 1 and eps > 0, got {lr}, {alpha}, {eps}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @th.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with th.enable_grad():
                loss = closure()
        for group in self.param_groups:
            alpha, eps, lr = group["alpha"], group["eps"], group["lr"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                grad = parameter.grad
                state = self.state[parameter]
                if not state:
                    state["grad_avg"] = th.zeros_like(parameter)
                    state["square_avg"] = th.zeros_like(parameter)
                grad_avg, square_avg = state["grad_avg"], state["square_avg"]
                grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                root = square_avg.addcmul(grad_avg, grad_avg, value=-1).add_(eps).sqrt_()
                parameter.addcdiv_(grad, root, value=-lr)
        return loss
