"""Prior preservation: make sure ``num_class_images`` class images exist, generating the missing ones.

Images are generated with the base pipeline (no adapter) and saved as ``class-<seed index>.png``; a
later run finds them and generates nothing. Generation is seeded per image index, so the set does not
depend on how many images a run had to make.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.images import list_image_files

logger = logging.getLogger(__name__)


def missing_class_images(class_dir: Path, wanted: int) -> int:
    """How many class images are still to be made."""
    existing = len(list_image_files(class_dir)) if class_dir.is_dir() else 0
    return max(0, wanted - existing)


@torch.no_grad()
def generate_class_images(pipeline: Any, class_dir: Path, prompt: str, wanted: int, batch_size: int, resolution: int, seed: int, steps: int = 25) -> int:
    """Generate the missing class images into ``class_dir`` (atomic writes); returns how many were made."""
    class_dir.mkdir(parents=True, exist_ok=True)
    existing = {p.name for p in class_dir.iterdir()}
    todo = [i for i in range(wanted) if f"class-{i:05d}.png" not in existing][: missing_class_images(class_dir, wanted)]
    if not todo:
        return 0
    logger.info("generating %d class image(s) for '%s' into %s", len(todo), prompt, class_dir)
    for start in tqdm(range(0, len(todo), batch_size), desc="class images", unit="batch"):
        chunk = todo[start : start + batch_size]
        generators = [torch.Generator(device="cpu").manual_seed(seed + i) for i in chunk]
        images = pipeline(prompt=[prompt] * len(chunk), generator=generators, num_inference_steps=steps, height=resolution, width=resolution).images
        for index, image in zip(chunk, images):
            final = class_dir / f"class-{index:05d}.png"
            temporary = final.with_name(f".{final.name}.tmp")
            image.save(temporary, format="PNG")
            temporary.replace(final)
    return len(todo)
