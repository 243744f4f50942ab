"""Training-time distortions that make clean renders look like generated ones, on a whole batch.

A generated 128 px image of ``builtin:mini-sdxl`` is softer (its VAE is small), a little noisy, and
its object is not exactly where or as large as in a render. So every picture of a training batch
(``(B, 3, H, W)`` in [-1, 1]) gets, with random numbers from one ``torch.Generator`` (deterministic):

* with probability :data:`P_ZOOM` a small zoom: a square crop of 82-100% of the side, anywhere,
  resampled (bilinear) back to full size, and with probability 1/2 a horizontal flip;
* with probability :data:`P_BLUR` a Gaussian blur of standard deviation (PIL's "radius") 0-2 px;
* with probability :data:`P_RESAMPLE` a down-and-up resampling (to 40-70% of the side and back);
* a contrast change around mid-grey, the same for the three channels (0.88-1.12);
* Gaussian noise of standard deviation 0-0.05 (in [-1, 1] units, i.e. up to about 6/255).

Nothing changes the hue, because colour is a label. The result is clipped to [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

P_ZOOM = 0.7
ZOOM = (0.82, 1.0)
P_BLUR = 0.75
BLUR_SIGMA = (0.0, 2.0)
P_RESAMPLE = 0.15
RESAMPLE = (0.4, 0.7)
CONTRAST = (0.88, 1.12)
NOISE_STD = (0.0, 0.05)
_RADIUS = math.ceil(3 * BLUR_SIGMA[1])


def _uniform(count: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(count, generator=generator)


def _chance(count: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(count, generator=generator) < p


def zoom_and_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random square crop (side :data:`ZOOM` of the image, with probability :data:`P_ZOOM`) resized
    back to the full size, and a horizontal flip with probability 1/2."""
    count = images.shape[0]
    scale = torch.where(_chance(count, P_ZOOM, generator), _uniform(count, ZOOM, generator), torch.ones(count))
    shift = (1 - scale)[:, None] * (2 * torch.rand(count, 2, generator=generator) - 1)
    flip = torch.where(_chance(count, 0.5, generator), -1.0, 1.0)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def blur(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian blur of a random standard deviation in :data:`BLUR_SIGMA` (with probability
    :data:`P_BLUR`; the others pass unchanged), separable, with reflected borders."""
    count, channels, height, width = images.shape
    sigma = torch.where(_chance(count, P_BLUR, generator), _uniform(count, BLUR_SIGMA, generator), torch.zeros(count))
    taps = torch.arange(-_RADIUS, _RADIUS + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # sigma ~ 0 gives the identity (a single 1)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B*C, taps)
    flat = images.reshape(1, count * channels, height, width)
    flat = F.pad(flat, (_RADIUS, _RADIUS, 0, 0), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=count * channels)
    flat = F.pad(flat, (0, 0, _RADIUS, _RADIUS), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=count * channels)
    return flat.reshape(count, channels, height, width)


def resample(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Down to a random :data:`RESAMPLE` fraction of the side and back up (bilinear), for a random
    :data:`P_RESAMPLE` of the pictures."""
    out = images.clone()
    chosen = _chance(images.shape[0], P_RESAMPLE, generator)
    fractions = _uniform(images.shape[0], RESAMPLE, generator)
    size = images.shape[-1]
    for index in torch.nonzero(chosen).flatten().tolist():
        small = max(8, round(size * float(fractions[index])))
        low = F.interpolate(images[index : index + 1], size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        out[index : index + 1] = F.interpolate(low, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return out


def contrast_and_noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Contrast around mid-grey (one factor per picture) and Gaussian noise, clipped to [-1, 1]."""
    count = images.shape[0]
    images = images * _uniform(count, CONTRAST, generator)[:, None, None, None]
    noise = torch.randn(images.shape, generator=generator) * _uniform(count, NOISE_STD, generator)[:, None, None, None]
    return (images + noise).clamp(-1.0, 1.0)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """All the distortions above, in order, on a ``(B, 3, H, W)`` float batch in [-1, 1]."""
    with torch.no_grad():
        images = zoom_and_flip(images, generator)
        images = blur(images, generator)
        images = resample(images, generator)
        return contrast_and_noise(images, generator)
