"""Paired differences with cluster-bootstrap 95 % confidence intervals.

A paired difference of method ``M`` against the reference ``R`` is taken per unit ``(subject, seed)``:
``d_{k,j} = x_{k,j}(M) - x_{k,j}(R)``, where ``x`` is a run's metric averaged over the same prompt set and
the same image seeds. The estimate is the mean over subjects of the per-subject mean difference,

    D = (1/K) sum_k (1/J_k) sum_j d_{k,j},

so every subject weighs the same. Seeds of one subject share that subject, so they are not independent
samples: the interval comes from a two-stage (cluster) bootstrap. Each of ``B`` resamples draws ``K``
subjects with replacement, then, inside each drawn subject, its ``J_k`` seeds with replacement, and
recomputes ``D``; the interval is the 2.5th and 97.5th percentiles of the ``B`` values (percentile
method, numpy's linear interpolation). With one seed per subject it is the ordinary bootstrap of the
subject means. The generator is seeded (:data:`BOOTSTRAP_SEED`), so a table always prints the same
interval for the same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SEED = 20250101
RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with its percentile interval, and how many subjects and pairs it rests on."""

    estimate: float
    low: float
    high: float
    subjects: int
    pairs: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def cluster_mean(groups: Sequence[Sequence[float]]) -> float:
    """The mean over groups of each group's mean."""
    return float(np.mean([np.mean(group) for group in groups]))


def cluster_bootstrap(groups: Sequence[Sequence[float]], resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> Interval:
    """:func:`cluster_mean` of ``groups`` (one group of differences per subject) with its two-stage
    bootstrap percentile interval (see the module docstring)."""
    arrays = [np.asarray(group, dtype=np.float64) for group in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("cluster_bootstrap needs at least one group and no empty group")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
    rng = np.random.default_rng(seed)
    count = len(arrays)
    # inner[k, b, slot]: the mean of a resample of group k's seeds, drawn afresh for every (b, slot)
    inner = np.stack([a[rng.integers(a.size, size=(resamples, count, a.size))].mean(axis=2) for a in arrays])  # (K, B, K)
    picked = rng.integers(count, size=(resamples, count))  # (B, K): the subjects drawn in resample b
    values = inner[picked, np.arange(resamples)[:, None], np.arange(count)[None, :]].mean(axis=1)  # (B,)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(cluster_mean(arrays), float(low), float(high), count, int(sum(a.size for a in arrays)))


def paired_groups(method: Mapping[tuple[str, int], float], reference: Mapping[tuple[str, int], float]) -> list[list[float]]:
    """Differences ``method - reference`` on the ``(subject, seed)`` keys both have, grouped by subject
    (subjects and seeds in sorted order)."""
    shared = sorted(set(method) & set(reference))
    groups: dict[str, list[float]] = {}
    for subject, seed in shared:
        groups.setdefault(subject, []).append(method[(subject, seed)] - reference[(subject, seed)])
    return list(groups.values())
