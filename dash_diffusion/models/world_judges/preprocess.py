"""Turning PIL images of any size and aspect into the judges' input tensor.

Every image is converted to RGB, resized so that its **shorter side is 128 px** (bicubic, which
low-pass filters when shrinking), then **centre-cropped** to 128 x 128, and scaled from [0, 255] to
[-1, 1]. A 384 x 256 picture thus loses 64 px on each side, a 256 x 384 one 64 px at the top and at
the bottom; the world's own 128 px renders pass unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .network import INPUT_SIZE


def square(image: Image.Image, size: int = INPUT_SIZE) -> Image.Image:
    """``image`` as an RGB ``size`` x ``size`` picture: shorter side resized to ``size``, centre crop."""
    image = image.convert("RGB")
    width, height = image.size
    if (width, height) == (size, size):
        return image
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_array(image: Image.Image) -> np.ndarray:
    """A square RGB image as a ``(3, H, W)`` float32 array in [-1, 1]."""
    pixels = np.asarray(image, dtype=np.float32)
    return (pixels.transpose(2, 0, 1) / 127.5) - 1.0


def to_batch(images: Sequence[Image.Image], size: int = INPUT_SIZE) -> torch.Tensor:
    """A ``(N, 3, size, size)`` float32 tensor in [-1, 1] of :func:`square`-d ``images``."""
    if not images:
        return torch.zeros(0, 3, size, size)
    return torch.from_numpy(np.stack([to_array(square(image, size)) for image in images]))
