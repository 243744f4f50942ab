"""Per-image scores: the three metrics of every generated image, with where it came from.

For image ``g`` of prompt ``p`` and the real photos ``r_1..r_m`` (see :mod:`.metrics`):
``dino = mean_j cos(DINO(g), DINO(r_j))``, ``clip_i = mean_j cos(CLIP(g), CLIP(r_j))`` and
``clip_t = cos(CLIP(g), CLIP_text(text(p)))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .generation import ImageJob
from .metrics import image_similarity, text_similarity

METRICS: tuple[str, ...] = ("dino", "clip_i", "clip_t")
METRIC_LABELS: dict[str, str] = {"dino": "DINO", "clip_i": "CLIP-I", "clip_t": "CLIP-T"}


@dataclass(frozen=True)
class ImageScore:
    """One generated image of one row (adapter or base) and its scores."""

    adapter: str
    prompt_index: int
    image_index: int
    seed: int
    prompt: str
    clip_text: str
    file: str
    dino: float
    clip_i: float
    clip_t: float

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


def score_images(
    adapter: str,
    jobs: Sequence[ImageJob],
    files: Sequence[str],
    dino_generated: np.ndarray,
    dino_references: np.ndarray,
    clip_generated: np.ndarray,
    clip_references: np.ndarray,
    clip_texts: np.ndarray,
) -> list[ImageScore]:
    """Scores of ``jobs`` (row k of every array belongs to ``jobs[k]``; ``clip_texts`` one row per job)."""
    if not len(jobs) == len(files) == len(dino_generated) == len(clip_generated) == len(clip_texts):
        raise ValueError("jobs, files and embeddings must have one row per image")
    dino = image_similarity(dino_generated, dino_references)
    clip_i = image_similarity(clip_generated, clip_references)
    clip_t = text_similarity(clip_generated, clip_texts)
    return [
        ImageScore(adapter, job.prompt_index, job.image_index, job.seed, job.prompt, job.clip_text, file, float(d), float(ci), float(ct))
        for job, file, d, ci, ct in zip(jobs, files, dino, clip_i, clip_t)
    ]
