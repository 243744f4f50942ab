"""Image preprocessing of the feature models, in PIL + numpy (no torchvision needed).

Both follow the torchvision evaluation transforms the models were published with:

* resize the shorter side to ``resize`` with PIL bicubic (the longer side becomes
  ``int(resize * long / short)``), then
* center-crop ``crop x crop`` (top-left corner ``round((h - crop) / 2), round((w - crop) / 2)``), then
* ``x = (pixel / 255 - mean) / std`` per channel, laid out as ``(3, crop, crop)`` float32.

DINO (Caron et al. 2021, eval transform): ``resize = crop * 256 / 224`` (256 for the 224 model),
ImageNet mean ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``.
CLIP (Radford et al. 2021): ``resize = crop`` (224), mean ``(0.48145466, 0.4578275, 0.40821073)``,
std ``(0.26862954, 0.26130258, 0.27577711)``; a model folder's ``preprocessor_config.json``
(``size.shortest_edge``, ``crop_size``, ``image_mean``, ``image_std``) overrides these.

Doing it here rather than with an ``AutoImageProcessor`` makes the scores independent of which
backend transformers picks (its torchvision and PIL backends resize slightly differently).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageTransform:
    """Shorter-side bicubic resize, center crop and per-channel normalisation."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """A ``(n, 3, crop, crop)`` float32 batch."""
        return np.stack([self.one(image) for image in images]).astype(np.float32)

    def one(self, image: Image.Image) -> np.ndarray:
        cropped = center_crop(resize_shorter_side(image.convert("RGB"), self.resize), self.crop)
        pixels = np.asarray(cropped, dtype=np.float64) / 255.0
        normalised = (pixels - np.asarray(self.mean)) / np.asarray(self.std)
        return normalised.transpose(2, 0, 1).astype(np.float32)

    def describe(self) -> dict[str, object]:
        return asdict(self)


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize so that the shorter side is ``size`` (aspect ratio kept, long side truncated)."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    if new_size == image.size:
        return image
    return image.resize(new_size, resample=Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size x size`` window (the image must be at least that large)."""
    width, height = image.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def dino_transform(crop: int = 224) -> ImageTransform:
    """DINO's evaluation transform for a model taking ``crop x crop`` inputs."""
    return ImageTransform(resize=int(round(crop * 256 / 224)), crop=crop, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def clip_transform(crop: int, folder: str | Path | None = None) -> ImageTransform:
    """CLIP's transform for ``crop x crop`` inputs, overridden by ``folder/preprocessor_config.json`` if present."""
    resize, mean, std = crop, CLIP_MEAN, CLIP_STD
    config_path = Path(folder) / "preprocessor_config.json" if folder is not None else None
    if config_path is not None and config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        size = config.get("size", resize)
        resize = int(size.get("shortest_edge", resize) if isinstance(size, dict) else size)
        crop_size = config.get("crop_size", crop)
        crop = int(crop_size.get("height", crop) if isinstance(crop_size, dict) else crop_size)
        mean = tuple(float(v) for v in config.get("image_mean", mean))
        std = tuple(float(v) for v in config.get("image_std", std))
    return ImageTransform(resize=resize, crop=crop, mean=mean, std=std)
