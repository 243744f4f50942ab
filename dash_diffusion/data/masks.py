"""Loss masks of instance images (``--instance_mask_dir``, sd-scripts' ``masked_loss``).

A mask is an image the size of its photo, named like it (``dog_01.jpg`` -> ``<mask dir>/dog_01.png``; any
image format with that stem), read as greyscale: white pixels count fully in the diffusion loss, black ones
not at all, greys in between (weight ``value / 255``). The subject's pixels alone then teach the adapter, so
the photos' backgrounds (a plain wall, the same sofa) do not become part of what the rare token means.

The mask goes through the photo's own resize and crop (:func:`crop_like`) and, on the latent grid, through
the same flips; the trainer averages it over each latent pixel's 8 x 8 patch (area interpolation) and
weights the squared error by it: ``L = sum_p w_p |pred_p - target_p|^2 / sum_p w_p`` per image (channels
included), so a small subject weighs as much as a large one.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import DataError
from .buckets import Size, cover_size
from .images import split_image_files


def find_mask(mask_dir: Path, image_path: Path) -> Path:
    """The mask file of ``image_path`` in ``mask_dir`` (same stem, any image extension)."""
    images, _ = split_image_files(mask_dir)
    matches = [path for path in images if path.stem == image_path.stem]
    if not matches:
        raise DataError(f"no loss mask for '{image_path.name}' in '{mask_dir}': add {image_path.stem}.png (white = subject) or drop --instance_mask_dir")
    if len(matches) > 1:
        raise DataError(f"several loss masks for '{image_path.name}' in '{mask_dir}' ({', '.join(p.name for p in matches)}): keep one")
    return matches[0]


def load_mask(mask_dir: Path, image_path: Path, image_size: Size) -> Image.Image:
    """The greyscale mask of ``image_path``; ``DataError`` when it is missing, unreadable, of another
    size than the photo's ``(height, width)`` or black everywhere."""
    path = find_mask(mask_dir, image_path)
    try:
        with Image.open(path) as opened:
            mask = opened.convert("L")
    except OSError as error:
        raise DataError(f"cannot read loss mask '{path}' ({error}): save it as a PNG") from error
    if (mask.height, mask.width) != tuple(image_size):
        raise DataError(
            f"loss mask '{path.name}' is {mask.width}x{mask.height} but its photo '{image_path.name}' is "
            f"{image_size[1]}x{image_size[0]}: draw the mask at the photo's size"
        )
    if mask.getextrema()[1] == 0:
        raise DataError(f"loss mask '{path}' is black everywhere, so its photo would teach nothing: paint the subject white")
    return mask


def crop_like(mask: Image.Image, original_size: Size, crop_top_left: Size, target_size: Size) -> torch.Tensor:
    """The mask resized and cropped as its photo was (:func:`~.buckets.resize_and_crop`: cover
    ``target_size`` keeping the aspect, crop at ``crop_top_left``): ``uint8 (1, H, W)``."""
    resized_h, resized_w = cover_size(tuple(original_size), tuple(target_size))
    if (resized_h, resized_w) != (mask.height, mask.width):
        mask = mask.resize((resized_w, resized_h), Image.Resampling.BILINEAR)
    top, left = crop_top_left
    height, width = target_size
    mask = mask.crop((left, top, left + width, top + height))
    return torch.frombuffer(bytearray(mask.tobytes()), dtype=torch.uint8).reshape(1, height, width)


def latent_weights(mask: torch.Tensor, latent_size: Size) -> torch.Tensor:
    """A ``uint8 (1, H, W)`` mask as float32 weights ``(1, h, w)`` on the latent grid (mean of each patch)."""
    weights = mask.to(torch.float32)[None] / 255.0
    return F.interpolate(weights, size=tuple(latent_size), mode="area")[0]
