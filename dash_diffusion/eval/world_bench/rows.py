"""Generating and scoring one row (the base model or one adapter) on a subject's world prompts.

Shared by ``evaluate_dreambooth.py --judges world`` and the mini-DreamBench. Image ``i`` of prompt ``p``
is drawn from its own CPU generator seeded ``seed + 1000 p + i``
(:func:`~dash_diffusion.eval.generation.image_seed`), so every row renders the same prompts from the same
noise and rows can be compared image by image. An adapter row generates the prompt with the identifier
(``a photo of sks ball on the beach``); the base row the prompt without it (``a photo of a ball on the
beach``): the base model never learned the identifier, so its class prompt is its best attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from dash_diffusion.eval.generation import ImageJob, generate, image_seed
from dash_diffusion.formats.safetensors_io import atomic_write

from .prompts import WorldPrompt
from .scoring import WorldScore, WorldScorer


@dataclass(frozen=True)
class Sampling:
    """How images are drawn: denoising steps, guidance, side in pixels, images per pipeline call."""

    steps: int = 25
    guidance: float = 5.0
    resolution: int = 128
    batch_size: int = 4


@dataclass
class RowResult:
    """The scores of one row and its images by (prompt index, image index)."""

    scores: list[WorldScore]
    images: dict[tuple[int, int], Image.Image]


def world_jobs(prompts: Sequence[WorldPrompt], indices: Sequence[int], num_images: int, seed: int, identified: bool) -> list[ImageJob]:
    """The images of one row: the identified prompt (adapters) or the class prompt (base model)."""
    return [
        ImageJob(p, i, image_seed(seed, p, i), prompts[p].text if identified else prompts[p].class_text, prompts[p].class_text)
        for p in indices
        for i in range(num_images)
    ]


def save_image(image: Image.Image, root: Path, relative: Path) -> str:
    """Write ``image`` as PNG at ``root / relative`` (atomically); returns ``relative`` as text."""
    atomic_write(root / relative, lambda tmp: image.save(tmp, format="PNG"))
    return relative.as_posix()


def render_row(pipe: Any, scorer: WorldScorer, row: str, prompts: Sequence[WorldPrompt], jobs: Sequence[ImageJob], sampling: Sampling, root: Path, folder: Path) -> RowResult:
    """Generate ``jobs`` with ``pipe`` as it is (adapter already applied), save every image under
    ``root / folder`` and score it against the scorer's references."""
    images: dict[tuple[int, int], Image.Image] = {}
    files: dict[tuple[int, int], str] = {}
    for job, image in generate(pipe, jobs, sampling.steps, sampling.guidance, sampling.resolution, sampling.batch_size):
        key = (job.prompt_index, job.image_index)
        images[key] = image
        files[key] = save_image(image, root, folder / f"p{job.prompt_index:02d}_i{job.image_index:02d}_s{job.seed}.png")
    keys = [(job.prompt_index, job.image_index) for job in jobs]
    scores = scorer.score(row, [images[k] for k in keys], [prompts[job.prompt_index] for job in jobs], jobs, [files[k] for k in keys])
    return RowResult(scores, images)
