"""The DreamBooth dataset: subject photos (and optional class images) ready for SDXL training.

Every usable image is decoded, resized and cropped exactly once, when the dataset is built, with crop
offsets drawn from an RNG seeded by ``seed`` and the file name. The dataset is therefore fully
deterministic, which is what lets the trainer encode each image to latents once and cache them.

Conventions (all ``(height, width)`` / ``(top, left)``, as SDXL's micro-conditioning uses them):

* ``original_size`` is the image size before resizing, ``target_size`` the crop (bucket) size and
  ``crop_top_left`` the crop offset in the *resized* image, as in diffusers'
  ``train_dreambooth_lora_sdxl.py``.
* Items are never flipped. With ``random_flip`` the decision for dataset index ``i`` in epoch ``e``
  is :meth:`DreamBoothDataset.flip_for(i, e) <DreamBoothDataset.flip_for>` (a hash of seed, epoch and
  index, so it is reproducible and survives a resume), and :func:`flip_example` /
  :func:`flip_batch` apply it to pixels or cached latents. A flip mirrors the whole resized image, so
  the crop's left edge becomes ``resized_width - left - target_width`` (see :func:`flip_example`).
* Indices ``0 .. instance_len - 1`` are instance examples (each image ``repeats`` times, image
  ``i % num_images``); indices ``instance_len .. len - 1`` are the class images, once each.
  :meth:`DreamBoothDataset.pairs` gives diffusers' prior-preservation pairing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dash_diffusion.data.buckets import (
    cover_size,
    make_buckets,
    nearest_bucket,
    resize_and_crop,
)
from dash_diffusion.data.images import describe_files, load_rgb, split_image_files
from dash_diffusion.data.masks import crop_like, load_mask
from dash_diffusion.errors import DataError

logger = logging.getLogger(__name__)

Size = tuple[int, int]
_FALLBACK_CLASS = "object"


def default_class_name(folder: str | os.PathLike[str]) -> str:
    """Guess the subject's class from a folder name (``dog6`` -> ``"dog"``, ``my_red-car`` -> ``"my red car"``).

    Underscores and hyphens become spaces, trailing digits are removed, the result is lower-cased
    with runs of spaces collapsed; ``"object"`` when nothing is left.
    """
    path = Path(folder)
    name = path.name or path.resolve().name
    name = re.sub(r"[_\-\s]+", " ", name)
    name = re.sub(r"[\d\s]+$", "", name)
    name = " ".join(name.lower().split())
    return name or _FALLBACK_CLASS


def default_instance_prompt(folder: str | os.PathLike[str]) -> str:
    """The prompt used when none is given: ``"a photo of sks <class>"`` with the folder's class."""
    return f"a photo of sks {default_class_name(folder)}"


def default_class_prompt(folder: str | os.PathLike[str]) -> str:
    """The class prompt used when none is given: ``"a photo of a <class>"`` with the folder's class."""
    return f"a photo of a {default_class_name(folder)}"


def read_caption(image_path: str | os.PathLike[str]) -> str | None:
    """Return the caption in ``<stem>.txt`` beside ``image_path``, or ``None`` if there is none.

    Whitespace (newlines included) is collapsed to single spaces. A missing or empty file gives
    ``None`` (an empty one with a warning). A file that is not valid UTF-8 is decoded anyway with
    the bad bytes replaced by U+FFFD and a warning naming it - a slightly damaged caption is more
    useful than a stopped run; an unreadable file is ignored with a warning.
    """
    caption_path = Path(image_path).with_suffix(".txt")
    if not caption_path.is_file():
        return None
    try:
        raw = caption_path.read_bytes()
    except OSError as error:
        reason = error.strerror or error
        logger.warning("ignoring caption file '%s': cannot read it (%s)", caption_path, reason)
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        logger.warning(
            "caption file '%s' is not valid UTF-8: undecodable bytes were replaced; save it as UTF-8",
            caption_path,
        )
        text = raw.decode("utf-8-sig", errors="replace")
    caption = " ".join(text.split())
    if not caption:
        logger.warning("ignoring empty caption file '%s'", caption_path)
        return None
    return caption


@dataclass
class Example:
    """One decoded, resized and cropped image (stored once, however often it is repeated).

    ``pixels`` is a ``uint8`` tensor ``(3, H, W)`` with ``(H, W) == target_size``; it is stored
    unflipped, so ``flipped`` is ``False`` unless a caller made a flipped copy.
    """

    path: Path
    prompt: str
    pixels: torch.Tensor
    target_size: Size
    original_size: Size
    crop_top_left: Size
    flipped: bool = False
    is_class_image: bool = False
    loss_mask: torch.Tensor | None = None  # uint8 (1, H, W), cropped as ``pixels`` (``--instance_mask_dir``)


class DreamBoothDataset(torch.utils.data.Dataset):
    """Instance (subject) images, optionally followed by class images for prior preservation.

    Each item is a dict: ``pixel_values`` (float32 ``(3, H, W)`` in [-1, 1], never flipped),
    ``prompt``, ``original_size``, ``crop_top_left``, ``target_size`` (int pairs), ``is_class``,
    ``flip`` (``flip_for(index, 0)``), ``index`` and ``example_id`` (position in :attr:`examples`,
    shared by the repeats of an image - the key for a latent cache).

    Without ``bucketing`` every image is resized and cropped to ``resolution x resolution``; with it
    each image goes to its nearest bucket of :func:`make_buckets(resolution, bucket_step)
    <dash_diffusion.data.buckets.make_buckets>`. A ``<stem>.txt`` caption beside an image replaces the
    instance (or class) prompt for that image. With ``instance_mask_dir`` every instance image has a
    loss mask there (:mod:`dash_diffusion.data.masks`), cropped with it (item ``loss_mask``; class images
    have none). Unreadable files are skipped with a warning; a folder with no usable image raises
    :class:`DataError`.
    """

    def __init__(
        self,
        instance_dir: str | os.PathLike[str],
        instance_prompt: str | None = None,
        resolution: int = 1024,
        center_crop: bool = False,
        random_flip: bool = False,
        repeats: int = 1,
        bucketing: bool = False,
        bucket_step: int = 64,
        seed: int = 0,
        class_dir: str | os.PathLike[str] | None = None,
        class_prompt: str | None = None,
        num_class_images: int | None = None,
        instance_mask_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if resolution < 1:
            raise DataError(f"resolution must be a positive pixel count, got {resolution}: use e.g. 1024")
        if repeats < 1:
            raise DataError(f"repeats must be at least 1, got {repeats}: use 1 to show each image once")
        self.instance_dir = Path(instance_dir)
        self.class_dir = Path(class_dir) if class_dir is not None else None
        self.instance_mask_dir = Path(instance_mask_dir) if instance_mask_dir else None
        if self.instance_mask_dir is not None and not self.instance_mask_dir.is_dir():
            raise DataError(f"--instance_mask_dir '{self.instance_mask_dir}' is not a folder: pass the folder of loss masks named like the photos")
        self.resolution = resolution
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.repeats = repeats
        self.bucketing = bucketing
        self.seed = seed
        self.buckets: list[Size] = (
            make_buckets(resolution, bucket_step) if bucketing else [(resolution, resolution)]
        )

        if instance_prompt is None or not instance_prompt.strip():
            instance_prompt = default_instance_prompt(self.instance_dir)
            logger.info("no instance prompt given; using '%s' (from the folder name)", instance_prompt)
        self.instance_prompt: str = instance_prompt
        self.class_prompt: str | None = None

        instance_examples = self._load_folder(self.instance_dir, instance_prompt, is_class=False)
        class_examples: list[Example] = []
        if self.class_dir is not None:
            if class_prompt is None or not class_prompt.strip():
                class_prompt = default_class_prompt(self.instance_dir)
                logger.info("no class prompt given; using '%s' (from the instance folder name)", class_prompt)
            self.class_prompt = class_prompt
            class_examples = self._load_folder(self.class_dir, class_prompt, is_class=True, limit=num_class_images)

        self.examples: list[Example] = instance_examples + class_examples
        self.num_instance_images: int = len(instance_examples)
        self.instance_len: int = len(instance_examples) * repeats
        self.class_len: int = len(class_examples)
        logger.info(
            "dataset: %d instance image(s) x %d repeat(s), %d class image(s), %d bucket size(s) in use",
            self.num_instance_images, repeats, self.class_len, len({e.target_size for e in self.examples}),
        )

    # -- loading -------------------------------------------------------------------------------

    def _load_folder(self, folder: Path, prompt: str, is_class: bool, limit: int | None = None) -> list[Example]:
        """The usable images of ``folder`` in name order, at most ``limit`` of them."""
        images, others = split_image_files(folder)
        if others:
            logger.warning(
                "ignoring %d file(s) in '%s' that are not supported images: %s",
                len(others), folder, describe_files(others),
            )
        examples: list[Example] = []
        skipped: list[Path] = list(others)
        kind = "class" if is_class else "instance"
        for path in images:
            if limit is not None and len(examples) >= limit:
                break
            image = load_rgb(path)
            if image is None:
                skipped.append(path)
                continue
            target = nearest_bucket(image.height, image.width, self.buckets)
            rng = random.Random(f"{self.seed}:{kind}:{path.name}")
            cropped, original, crop = resize_and_crop(image, target, self.center_crop, rng)
            pixels = torch.from_numpy(np.array(cropped, dtype=np.uint8)).permute(2, 0, 1).contiguous()
            loss_mask = None
            if self.instance_mask_dir is not None and not is_class:
                loss_mask = crop_like(load_mask(self.instance_mask_dir, path, original), original, crop, target)
            examples.append(
                Example(
                    path=path,
                    prompt=read_caption(path) or prompt,
                    pixels=pixels,
                    target_size=target,
                    original_size=original,
                    crop_top_left=crop,
                    is_class_image=is_class,
                    loss_mask=loss_mask,
                )
            )
        if not examples:
            what = "add .jpg/.png photos of the subject" if not is_class else "generate or add class images"
            detail = "no image files found"
            if skipped:
                detail = f"{len(skipped)} files skipped: {describe_files(sorted(skipped))}"
            raise DataError(f"no usable images in '{folder}' ({detail}): {what}")
        if skipped:
            logger.warning(
                "using %d image(s) from '%s'; %d file(s) skipped", len(examples), folder, len(skipped)
            )
        return examples

    # -- indexing ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.instance_len + self.class_len

    def example_id(self, index: int) -> int:
        """Position in :attr:`examples` of dataset ``index`` (repeats of an image share it)."""
        if not 0 <= index < len(self):
            raise IndexError(f"dataset index {index} out of range 0..{len(self) - 1}")
        if index < self.instance_len:
            return index % self.num_instance_images
        return self.num_instance_images + (index - self.instance_len)

    def is_class_index(self, index: int) -> bool:
        """Whether dataset ``index`` is a class (prior-preservation) image."""
        return self.examples[self.example_id(index)].is_class_image

    @property
    def target_sizes(self) -> list[Size]:
        """``(height, width)`` of every dataset index: the keys for :class:`BucketBatchSampler`."""
        return [self.examples[self.example_id(i)].target_size for i in range(len(self))]

    def pairs(self) -> list[tuple[int, int]]:
        """Prior-preservation pairs ``(instance_index, class_index)``, as diffusers pairs them.

        There are ``max(instance_len, class_len)`` pairs; pair ``k`` is
        ``(k % instance_len, instance_len + k % class_len)``. With bucketing the two members may
        have different target sizes, so a trainer that concatenates them must group pairs by
        ``(target_sizes[i], target_sizes[c])``. Empty without class images.
        """
        if self.class_len == 0:
            return []
        count = max(self.instance_len, self.class_len)
        return [(k % self.instance_len, self.instance_len + k % self.class_len) for k in range(count)]

    def flip_for(self, index: int, epoch: int) -> bool:
        """Whether dataset ``index`` is shown mirrored in ``epoch`` (never without ``random_flip``).

        A hash of ``(seed, epoch, index)``: independent of process, worker, order of access and
        global RNGs, so resuming at an epoch reproduces its flips.
        """
        if not self.random_flip:
            return False
        digest = hashlib.blake2b(f"flip:{self.seed}:{epoch}:{index}".encode(), digest_size=8).digest()
        return bool(digest[0] & 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        example = self.examples[self.example_id(index)]
        return {
            "pixel_values": example.pixels.to(torch.float32) / 127.5 - 1.0,
            "prompt": example.prompt,
            "original_size": example.original_size,
            "crop_top_left": example.crop_top_left,
            "target_size": example.target_size,
            "is_class": example.is_class_image,
            "flip": self.flip_for(index, 0),
            "index": index,
            "example_id": self.example_id(index),
            "loss_mask": example.loss_mask,
        }


def flip_example(
    pixel_values: torch.Tensor,
    crop_top_left: Sequence[int],
    original_size: Sequence[int],
    target_size: Sequence[int],
) -> tuple[torch.Tensor, Size]:
    """Mirror one example horizontally; return ``(flipped_tensor, new_crop_top_left)``.

    ``pixel_values`` may be pixels ``(..., H, W)`` or their latents (``(..., H/8, W/8)``): only the
    last dimension is reversed. ``crop_top_left`` stays in resized-image pixel coordinates: the
    flip is treated as mirroring the whole resized image (size :func:`cover_size` of
    ``original_size`` and ``target_size``) before cropping, as diffusers' DreamBooth SDXL script
    does, so the crop window ``[left, left + W)`` becomes
    ``[resized_width - left - W, resized_width - left)`` and the new ``left`` is
    ``resized_width - left - target_width``; ``top`` is unchanged. Flipping twice restores the
    example; a centred crop keeps (up to rounding) its offset. (diffusers' text-to-image SDXL script
    uses ``target_width - left`` after cropping instead, which is not a mirror of the crop.)
    """
    top, left = int(crop_top_left[0]), int(crop_top_left[1])
    original = (int(original_size[0]), int(original_size[1]))
    _, resized_w = cover_size(original, (int(target_size[0]), int(target_size[1])))
    new_left = resized_w - left - int(target_size[1])
    return torch.flip(pixel_values, dims=(-1,)), (top, new_left)


def flip_batch(batch: dict[str, Any], flags: Sequence[bool], key: str = "pixel_values") -> dict[str, Any]:
    """Apply :func:`flip_example` to the rows of a :func:`collate_examples` batch where ``flags`` is true.

    ``key`` names the tensor to flip (``"pixel_values"``, or e.g. ``"latents"`` a trainer added);
    ``crop_top_lefts`` is updated to match. Returns a new dict; the input is not modified.
    """
    if len(flags) != len(batch["prompts"]):
        raise ValueError(f"got {len(flags)} flip flags for a batch of {len(batch['prompts'])}")
    tensor = batch[key].clone()
    crops = batch["crop_top_lefts"].clone()
    for row, flag in enumerate(flags):
        if not flag:
            continue
        tensor[row], new_crop = flip_example(
            tensor[row],
            crops[row].tolist(),
            batch["original_sizes"][row].tolist(),
            batch["target_sizes"][row].tolist(),
        )
        crops[row] = torch.tensor(new_crop, dtype=crops.dtype)
    return {**batch, key: tensor, "crop_top_lefts": crops}


def collate_examples(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack dataset items (all of one bucket) into a training batch.

    Returns ``pixel_values`` ``(B, 3, H, W)`` float32, ``prompts`` (list of str), ``original_sizes``,
    ``crop_top_lefts`` and ``target_sizes`` (``(B, 2)`` int64), ``is_class`` and ``flip`` (``(B,)``
    bool), ``indices`` and ``example_ids`` (``(B,)`` int64).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(item["pixel_values"].shape) for item in batch}
    if len(shapes) > 1:
        raise ValueError(f"batch mixes image sizes {sorted(shapes)}: batch by bucket (BucketBatchSampler)")
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in batch]).contiguous(),
        "prompts": [item["prompt"] for item in batch],
        "original_sizes": torch.tensor([item["original_size"] for item in batch], dtype=torch.int64),
        "crop_top_lefts": torch.tensor([item["crop_top_left"] for item in batch], dtype=torch.int64),
        "target_sizes": torch.tensor([item["target_size"] for item in batch], dtype=torch.int64),
        "is_class": torch.tensor([item["is_class"] for item in batch], dtype=torch.bool),
        "flip": torch.tensor([item["flip"] for item in batch], dtype=torch.bool),
        "indices": torch.tensor([item["index"] for item in batch], dtype=torch.int64),
        "example_ids": torch.tensor([item["example_id"] for item in batch], dtype=torch.int64),
    }
