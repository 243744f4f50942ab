"""Aspect-ratio bucketing, SDXL style.

Instead of cropping every photo to a square, each image is assigned the bucket (a ``(height, width)``
with about ``resolution**2`` pixels) whose aspect ratio is closest to its own, resized to cover it
and cropped by at most a few pixels. Batches are then drawn from one bucket at a time so their
tensors stack. All sizes in this module are ``(height, width)`` and all offsets ``(top, left)``,
the order SDXL's micro-conditioning (``original_size``, ``crops_coords_top_left``, ``target_size``)
uses.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Hashable, Iterator, Sequence

from PIL import Image
from torch.utils.data import Sampler

from dash_diffusion.errors import DataError

logger = logging.getLogger(__name__)

Size = tuple[int, int]


def make_buckets(
    resolution: int,
    step: int = 64,
    min_side: int | None = None,
    max_side: int | None = None,
    max_ratio: float = 4.0,
) -> list[Size]:
    """Return the sorted ``(height, width)`` buckets for training at ``resolution``.

    Enumerated like kohya sd-scripts: for every width from ``min_side`` to ``max_side`` in steps of
    ``step``, the largest multiple of ``step`` as height whose area stays within
    ``resolution**2`` (and within ``max_side`` and ``max_ratio``), in both orientations, plus the
    square ``(resolution, resolution)``. Defaults: ``min_side`` is half the resolution and
    ``max_side`` twice it (rounded down to ``step``), which with ``max_ratio=4`` gives SDXL's
    512x2048 ... 1024x1024 ... 2048x512 at 1024. ``resolution`` must be a multiple of ``step``.
    """
    _check_bucket_options(resolution, step, max_ratio)
    if min_side is None:
        min_side = max(step, (resolution // 2) // step * step)
    if max_side is None:
        max_side = resolution * 2 // step * step
    if min_side < step or min_side > resolution or max_side < resolution:
        raise DataError(
            f"bucket side limits {min_side}..{max_side} must satisfy {step} <= min <= {resolution} "
            f"<= max: widen the limits around the resolution"
        )
    max_area = resolution * resolution
    buckets: set[Size] = {(resolution, resolution)}
    first_width = -(-min_side // step) * step  # round up to a multiple of step
    for width in range(first_width, max_side + 1, step):
        height_cap = min(max_side, int(width * max_ratio) // step * step)
        height = min(height_cap, max_area // width // step * step)
        if height < min_side or max(height, width) > max_ratio * min(height, width):
            continue
        buckets.add((height, width))
        buckets.add((width, height))
    return sorted(buckets)


def nearest_bucket(height: int, width: int, buckets: Sequence[Size]) -> Size:
    """Return the bucket whose aspect ratio is closest to ``height / width`` in log space.

    Ties (equal distance) go to the bucket with the larger area, then to the smaller height, so the
    result never depends on the order of ``buckets``.
    """
    if not buckets:
        raise ValueError("nearest_bucket needs at least one bucket")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    target = math.log(height / width)

    def key(bucket: Size) -> tuple[float, int, int]:
        distance = abs(math.log(bucket[0] / bucket[1]) - target)
        return (round(distance, 9), -bucket[0] * bucket[1], bucket[0])

    return min(buckets, key=key)


def cover_size(original_hw: Size, target_hw: Size) -> Size:
    """Size ``(height, width)`` that ``original_hw`` is resized to so it covers ``target_hw``.

    The aspect ratio is kept (each side rounded to the nearest pixel) and neither side is smaller
    than the target's, so a ``target_hw`` crop always fits.
    """
    height, width = original_hw
    target_h, target_w = target_hw
    scale = max(target_h / height, target_w / width)
    return max(target_h, round(height * scale)), max(target_w, round(width * scale))


def resize_and_crop(
    image: Image.Image,
    target_hw: Size,
    center_crop: bool,
    rng: random.Random,
) -> tuple[Image.Image, Size, Size]:
    """Resize ``image`` to cover ``target_hw`` keeping its aspect, then crop it to exactly that size.

    Returns ``(cropped, original_size, crop_top_left)``: ``original_size`` is the image's
    ``(height, width)`` before resizing and ``crop_top_left`` the ``(top, left)`` of the crop in the
    resized image, as diffusers' SDXL DreamBooth script computes them (center:
    ``round((resized - target) / 2)``; random: uniform offsets drawn from ``rng``).
    """
    original = (image.height, image.width)
    resized_h, resized_w = cover_size(original, target_hw)
    if (resized_h, resized_w) != original:
        image = image.resize((resized_w, resized_h), Image.Resampling.LANCZOS)
    target_h, target_w = target_hw
    if center_crop:
        top = max(0, int(round((resized_h - target_h) / 2.0)))
        left = max(0, int(round((resized_w - target_w) / 2.0)))
    else:
        top = rng.randint(0, resized_h - target_h)
        left = rng.randint(0, resized_w - target_w)
    if (resized_h, resized_w) != (target_h, target_w):
        image = image.crop((left, top, left + target_w, top + target_h))
    return image, original, (top, left)


class BucketBatchSampler(Sampler[list[int]]):
    """Batch sampler whose batches each hold indices of one bucket only.

    ``keys[i]`` is the bucket of example ``i`` (normally its ``(height, width)`` target size; any
    mutually comparable hashable works, e.g. a pair of sizes for instance/class pairs). Every epoch,
    each bucket's indices are shuffled and cut into batches of ``batch_size`` (the last, smaller one
    kept unless ``drop_last``), then the order of all batches is shuffled. The shuffles use a private
    RNG seeded from ``(seed, epoch)`` only, so the same seed and epoch always give the same batches,
    whatever the global RNG state or how often the sampler was iterated; call :meth:`set_epoch`
    before each epoch (it is never advanced automatically).
    """

    def __init__(
        self,
        keys: Sequence[Hashable],
        batch_size: int,
        seed: int = 0,
        drop_last: bool = False,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}: use a positive batch size")
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.epoch = 0
        groups: dict[Hashable, list[int]] = {}
        for index, key in enumerate(keys):
            groups.setdefault(key, []).append(index)
        self._groups = [groups[key] for key in sorted(groups)]  # type: ignore[type-var]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle the next iteration produces."""
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """All batches of ``epoch`` (default: the current one), in order."""
        epoch = self.epoch if epoch is None else epoch
        rng = random.Random(f"bucket-batch-sampler:{self.seed}:{epoch}")
        result: list[list[int]] = []
        for group in self._groups:
            indices = list(group)
            if self.shuffle:
                rng.shuffle(indices)
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    result.append(batch)
        if self.shuffle:
            rng.shuffle(result)
        return result

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        if self.drop_last:
            return sum(len(group) // self.batch_size for group in self._groups)
        return sum(-(-len(group) // self.batch_size) for group in self._groups)


def _check_bucket_options(resolution: int, step: int, max_ratio: float) -> None:
    if step < 1:
        raise DataError(f"bucket step must be a positive number of pixels, got {step}: use e.g. 64")
    if resolution < step:
        raise DataError(f"resolution {resolution} is below the bucket step {step}: raise the resolution")
    if resolution % step:
        lower = resolution // step * step
        raise DataError(
            f"resolution {resolution} is not a multiple of the bucket step {step}: "
            f"use {lower} or {lower + step}"
        )
    if max_ratio < 1:
        raise DataError(f"bucket max aspect ratio must be at least 1, got {max_ratio}: use e.g. 4")
