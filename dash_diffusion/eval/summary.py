"""Aggregating per-image scores: per row and per prompt, and paired differences between adapters.

* Row summary (``prompt = all``): mean ± sample std over all ``n = prompts x images`` images of a row.
* Prompt summary: the same over the ``--num_images`` images of one prompt.
* Paired difference of adapter A against the reference adapter R: ``d_k = x_k(A) - x_k(R)`` over the
  images ``k`` with the same (prompt, seed), summarised as mean ± std and n. The std of ``d`` is
  usually much smaller than that of either row, because the shared noise and prompt cancel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .config import BASE_ROW
from .metrics import Stat, paired_difference, summarise
from .scores import METRICS, ImageScore


@dataclass(frozen=True)
class SummaryRow:
    """Statistics of one row (adapter or base) over all prompts (``prompt_index`` None) or one prompt."""

    adapter: str
    prompt_index: int | None
    prompt: str
    stats: dict[str, Stat]


@dataclass(frozen=True)
class PairedRow:
    """Per-image differences ``adapter - reference`` for every metric."""

    adapter: str
    reference: str
    stats: dict[str, Stat]


def _order(scores: Sequence[ImageScore]) -> list[str]:
    seen: list[str] = []
    for score in scores:
        if score.adapter not in seen:
            seen.append(score.adapter)
    return seen


def summary_rows(scores: Sequence[ImageScore]) -> list[SummaryRow]:
    """For every row in order of appearance: the overall summary, then one summary per prompt."""
    rows: list[SummaryRow] = []
    for adapter in _order(scores):
        mine = [s for s in scores if s.adapter == adapter]
        rows.append(SummaryRow(adapter, None, "all", {m: summarise([s.metric(m) for s in mine]) for m in METRICS}))
        for prompt_index in sorted({s.prompt_index for s in mine}):
            group = [s for s in mine if s.prompt_index == prompt_index]
            rows.append(SummaryRow(adapter, prompt_index, group[0].prompt, {m: summarise([s.metric(m) for s in group]) for m in METRICS}))
    return rows


def paired_rows(scores: Sequence[ImageScore], reference: str) -> list[PairedRow]:
    """``adapter - reference`` per image, for every row except the reference and the base model."""
    by_key = {(s.adapter, s.prompt_index, s.seed): s for s in scores}
    ref = sorted((s for s in scores if s.adapter == reference), key=lambda s: (s.prompt_index, s.seed))
    if not ref:
        raise ValueError(f"no scores for the reference row {reference!r}")
    rows = []
    for adapter in _order(scores):
        if adapter in (reference, BASE_ROW):
            continue
        pairs = [(by_key[(adapter, r.prompt_index, r.seed)], r) for r in ref if (adapter, r.prompt_index, r.seed) in by_key]
        stats = {m: paired_difference([a.metric(m) for a, _ in pairs], [r.metric(m) for _, r in pairs]) for m in METRICS}
        rows.append(PairedRow(adapter, reference, stats))
    return rows
