"""The DreamBooth metrics (Ruiz et al., CVPR 2023) as pure functions of embeddings.

With ``cos(a, b) = a . b / (||a|| ||b||)``, generated images ``g_1..g_n``, real subject photos
``r_1..r_m``, an image embedder ``f`` and CLIP's text embedder ``t``:

* subject fidelity of one generated image (DINO with ``f`` = DINO ViT-S/16 CLS, CLIP-I with ``f`` =
  CLIP image embedding): ``s_i = (1/m) sum_j cos(f(g_i), f(r_j))``;
* text alignment of one generated image (CLIP-T): ``c_i = cos(f_clip(g_i), t(p_i))`` with ``p_i``
  its prompt (see :func:`.prompts.clip_t_text`); a raw cosine in [-1, 1], not CLIPScore's
  ``2.5 * max(cos, 0)``.

The paper's "average pairwise cosine similarity" over all (generated, real) pairs is
``(1/(n m)) sum_i sum_j cos(...) = mean_i s_i``, so per-image scores lose nothing and give the spread.
A summary is ``mean``, sample standard deviation ``std = sqrt(sum (x - mean)^2 / (n - 1))`` (NaN when
``n < 2``) and ``n``. Because every adapter sees the same prompts and seeds, adapters can also be
compared image by image: ``d_i = x_i(A) - x_i(B)`` summarised the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (ddof = 1) and count of a set of scores."""

    mean: float
    std: float
    n: int


def _rows(values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    rows = np.asarray(values, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2:
        raise ValueError(f"expected a matrix of embeddings (rows), got shape {rows.shape}")
    return rows


def normalise(rows: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    rows = _rows(rows)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def cosine_matrix(a: np.ndarray | Sequence[Sequence[float]], b: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``C[i, j] = cos(a_i, b_j)``, shape ``(len(a), len(b))``."""
    left, right = normalise(a), normalise(b)
    if left.shape[1] != right.shape[1]:
        raise ValueError(f"embedding sizes differ: {left.shape[1]} vs {right.shape[1]}")
    return left @ right.T


def image_similarity(generated: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per generated image, the mean cosine similarity to all reference images (DINO, CLIP-I): ``s_i``."""
    if len(references) == 0:
        raise ValueError("no reference embeddings")
    return cosine_matrix(generated, references).mean(axis=1)


def text_similarity(images: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Per generated image, the cosine similarity with its own prompt's text embedding (CLIP-T): ``c_i``."""
    left, right = normalise(images), normalise(texts)
    if left.shape != right.shape:
        raise ValueError(f"need one text per image: shapes {left.shape} vs {right.shape}")
    return np.sum(left * right, axis=1)


def summarise(values: Sequence[float] | np.ndarray) -> Stat:
    """Mean, sample std (NaN for fewer than two values) and n."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        return Stat(math.nan, math.nan, 0)
    std = float(np.std(data, ddof=1)) if data.size > 1 else math.nan
    return Stat(float(np.mean(data)), std, int(data.size))


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> Stat:
    """Summary of ``a_i - b_i`` for scores of the same images (same prompt and seed) under two adapters."""
    left, right = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if left.shape != right.shape:
        raise ValueError(f"paired scores need the same images: {left.shape} vs {right.shape}")
    return summarise(left - right)
