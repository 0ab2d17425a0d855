"""Image augmentation of sampled pixel observations (`augmentation:` of DQN and QR-DQN).

- `random_shift` (DrQ, Kostrikov et al. 2020): each image of the batch is padded by 4 pixels
  that repeat its border, then cropped back to its size at a random offset, i.e. shifted by
  -4..+4 pixels in each direction. All stacked frames of one image shift together.
- `random_shift_intensity` (DrQ(ε) as Dopamine's `labs/atari_100k` runs it): the same shift,
  then each image is scaled by 1 + 0.05 * clip(N(0, 1), -2, 2).

The update augments observations and next observations with independent draws, as Dopamine's
`Atari100kRainbowAgent._training_step_update` does. Draws come from PyTorch's global generator
on the batch's device, which checkpoints save and restore, so a resumed run is exact.
Observations are (batch, channels, height, width); the result is float, in the same 0-255
scale, so the policy's own preprocessing (divide by 255) applies unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch as th

SHIFT_PAD = 4  # pixels; DrQ's and Dopamine's
INTENSITY_SCALE = 0.05  # Dopamine's `_intensity_aug`


def random_shift(observations: th.Tensor, pad: int = SHIFT_PAD) -> th.Tensor:
    """Each image shifted by its own random offset in -pad..+pad (rows and columns apart),
    the border pixels repeated into the space it leaves: a crop of the image padded by
    repetition, taken by clamping the crop's indices to the image instead of padding it."""
    batch, channels, height, width = observations.shape
    device = observations.device
    offsets = th.randint(-pad, pad + 1, (batch, 2), device=device)
    rows = (th.arange(height, device=device) + offsets[:, :1]).clamp(0, height - 1)
    columns = (th.arange(width, device=device) + offsets[:, 1:]).clamp(0, width - 1)
    shape = (batch, channels, height, width)
    shifted = observations.gather(2, rows[:, None, :, None].expand(shape))
    return shifted.gather(3, columns[:, None, None, :].expand(shape)).float()


def random_intensity(observations: th.Tensor, scale: float = INTENSITY_SCALE) -> th.Tensor:
    """Each image multiplied by 1 + scale * clip(N(0, 1), -2, 2)."""
    noise = th.randn((observations.shape[0], 1, 1, 1), device=observations.device)
    return observations.float() * (1.0 + scale * noise.clamp(-2.0, 2.0))


def random_shift_intensity(observations: th.Tensor) -> th.Tensor:
    return random_intensity(random_shift(observations))


AUGMENTATIONS: Mapping[str, Callable[[th.Tensor], th.Tensor]] = {
    "random_shift": random_shift,
    "random_shift_intensity": random_shift_intensity,
}
