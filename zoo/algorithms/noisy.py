"""Noisy nets (Fortunato et al. 2018, "Noisy Networks for Exploration"): factorised Gaussian
linear layers for the fully connected layers of a Q-network's head, exploring in place of
epsilon-greedy (Rainbow's way).

A `NoisyLinear` of p inputs and q outputs holds means (mu) and standard deviations (sigma)
of its weights and biases. With noise on, each forward pass draws p + q fresh standard
normals e, and the weights are w = mu + sigma * outer(f(e_out), f(e_in)), the bias
b = mu_b + sigma_b * f(e_out), with f(x) = sgn(x) sqrt(|x|) (the paper's section 3.2, which
also gives the initialisation: mu ~ U[-1/sqrt(p), 1/sqrt(p)], sigma = sigma_0/sqrt(p)).

When noise is on follows the policy's mode (`set_noise`, called from the policy's
`set_training_mode`, zoo/algorithms/q_networks.py): in training every forward pass of the online and of the target network
draws its own noise, independent draws as in the paper (Dopamine shares one key across a
network's layers and between the online and target networks); acting while training
(`predict(deterministic=False)`) draws fresh noise at every step; evaluation
(`deterministic=True`) uses the mean weights mu, or fresh noise with `noisy_eval: sample`.
The noise is drawn with PyTorch's generator, so an eager seeded run draws the same noise
again; a compiled update draws it inside the compiled code (on CUDA not yet checked).
"""

from __future__ import annotations

import math

import torch as th
import torch.nn.functional as F
from torch import nn

# sigma_0 of factorised noisy layers: the paper's section 3.2 and Rainbow's (Hessel et al. 2018).
DEFAULT_SIGMA0 = 0.5


def scaled_noise(size: int, device: th.device, dtype: th.dtype) -> th.Tensor:
    """f(ε) = sgn(ε) sqrt(|ε|) of `size` standard normals."""
    noise = th.randn(size, device=device, dtype=dtype)
    return noise.sign() * noise.abs().sqrt()


class NoisyLinear(nn.Module):
    """A linear layer with factorised Gaussian noise on its weights and bias."""

    def __init__(self, in_features: int, out_features: int, sigma0: float = DEFAULT_SIGMA0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_mu = nn.Parameter(th.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(th.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(th.empty(out_features))
        self.bias_sigma = nn.Parameter(th.empty(out_features))
        self.noise_on = True
        bound = 1 / math.sqrt(in_features)
        with th.no_grad():
            self.weight_mu.uniform_(-bound, bound)
            self.bias_mu.uniform_(-bound, bound)
            self.weight_sigma.fill_(sigma0 * bound)
            self.bias_sigma.fill_(sigma0 * bound)

    def forward(self, inputs: th.Tensor) -> th.Tensor:
        mean = F.linear(inputs, self.weight_mu, self.bias_mu)
        if not self.noise_on:
            return mean
        noise_in = scaled_noise(self.in_features, inputs.device, inputs.dtype)
        noise_out = scaled_noise(self.out_features, inputs.device, inputs.dtype)
        # (sigma * outer(f(e_out), f(e_in))) x = f(e_out) * (sigma (f(e_in) * x)): the same
        # product without building the noise matrix.
        noisy = F.linear(inputs * noise_in, self.weight_sigma) + self.bias_sigma
        return mean + noisy * noise_out

    def sampled_weights(self) -> tuple[th.Tensor, th.Tensor]:
        """One draw of the noisy weights and bias (for inspecting the noise)."""
        device, dtype = self.weight_mu.device, self.weight_mu.dtype
        noise_in = scaled_noise(self.in_features, device, dtype)
        noise_out = scaled_noise(self.out_features, device, dtype)
        weight = self.weight_mu + self.weight_sigma * th.outer(noise_out, noise_in)
        return weight, self.bias_mu + self.bias_sigma * noise_out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def with_noisy_layers(module: nn.Module, sigma0: float) -> nn.Module:
    """`module` with each of its nn.Linear layers replaced by a NoisyLinear of the same shape;
    the features extractor (a network's trunk) keeps its layers."""
    for name, child in module.named_children():
        if name == "features_extractor":
            continue
        if isinstance(child, nn.Linear):
            setattr(module, name, NoisyLinear(child.in_features, child.out_features, sigma0))
        else:
            with_noisy_layers(child, sigma0)
    return module


def noisy_layers(module: nn.Module) -> list[NoisyLinear]:
    return [layer for layer in module.modules() if isinstance(layer, NoisyLinear)]


def set_noise(module: nn.Module, on: bool) -> None:
    for layer in noisy_layers(module):
        layer.noise_on = on
