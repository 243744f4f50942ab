"""The files of a ``--judges world`` evaluation: per-image CSV, per-row summary, paired differences, markdown.

Rows are summarised as mean ± sample std over their images (:func:`.metrics.summarise`); attribute
accuracies are shares of the images whose prompt names that attribute. Adapters are compared with the
reference adapter image by image (same prompt and seed): ``d_k = x_k(A) - x_k(R)``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dash_diffusion.formats.safetensors_io import atomic_write, atomic_write_text

from .config import BASE_ROW
from .metrics import Stat, paired_difference, summarise
from .report import format_stat
from .world_bench.scoring import ATTRIBUTES, METRIC_LABELS, METRIC_ROLES, METRICS, WorldScore

SCORE_COLUMNS = ("row", "prompt_index", "image_index", "seed", "kind", "prompt", "file", *METRICS, *(f"{a}_ok" for a in ATTRIBUTES))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.8f}"
    return str(value)


def _rows_in_order(scores: Sequence[WorldScore]) -> list[str]:
    return list(dict.fromkeys(score.row for score in scores))


def accuracy(scores: Sequence[WorldScore], attribute: str) -> float:
    """Share of ``scores`` whose prompt names ``attribute`` and whose image shows it (NaN if none names it)."""
    checked = [getattr(s, f"{attribute}_ok") for s in scores if getattr(s, f"{attribute}_ok") is not None]
    return float(sum(checked) / len(checked)) if checked else math.nan


def row_stats(scores: Sequence[WorldScore]) -> dict[str, dict[str, Stat]]:
    """Per row: a :class:`Stat` of every metric."""
    return {row: {m: summarise([s.metric(m) for s in scores if s.row == row]) for m in METRICS} for row in _rows_in_order(scores)}


def paired_stats(scores: Sequence[WorldScore], reference: str) -> dict[str, dict[str, Stat]]:
    """Per adapter other than ``reference`` and the base row: a :class:`Stat` of ``adapter - reference``
    over the images of the same (prompt, seed)."""
    by_key = {(s.row, s.prompt_index, s.seed): s for s in scores}
    ref = [s for s in scores if s.row == reference]
    out = {}
    for row in _rows_in_order(scores):
        if row in (reference, BASE_ROW):
            continue
        pairs = [(by_key[(row, r.prompt_index, r.seed)], r) for r in ref if (row, r.prompt_index, r.seed) in by_key]
        out[row] = {m: paired_difference([a.metric(m) for a, _ in pairs], [r.metric(m) for _, r in pairs]) for m in METRICS}
    return out


def write_scores_csv(path: Path, scores: Sequence[WorldScore]) -> Path:
    """One line per generated image (written atomically)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(SCORE_COLUMNS)
            for s in scores:
                writer.writerow([_cell(s.to_dict()[column]) for column in SCORE_COLUMNS])

    return atomic_write(path, write)


def markdown(scores: Sequence[WorldScore], reference: str | None, sources: dict[str, str | None], setup: dict[str, str]) -> str:
    """``results.md``: rows x metrics (and attribute accuracies), paired differences, the setup."""
    stats = row_stats(scores)
    header = " | ".join(f"{METRIC_LABELS[m]} ({METRIC_ROLES[m]}'s role)" for m in METRICS)
    lines = [
        f"# World evaluation: {setup['subject']}",
        "",
        f"| row | adapter | {header} | object | scene | colour | n |",
        "|---|---|" + "---|" * (len(METRICS) + 4),
    ]
    for row, row_stat in stats.items():
        mine = [s for s in scores if s.row == row]
        accuracies = " | ".join("n/a" if math.isnan(a := accuracy(mine, name)) else f"{100 * a:.0f}%" for name in ATTRIBUTES)
        cells = " | ".join(format_stat(row_stat[m]) for m in METRICS)
        lines.append(f"| {row} | {sources.get(row) or '(none: base model, class prompts)'} | {cells} | {accuracies} | {row_stat[METRICS[0]].n} |")
    lines += ["", "Mean ± sample std over the images of a row; object/scene/colour: share of the images whose prompt names it in which the judges find it."]
    if reference:
        delta = " | ".join(f"Δ {METRIC_LABELS[m]}" for m in METRICS)
        lines += ["", f"## Paired differences against `{reference}` (same prompt and seed)", "", f"| adapter | {delta} | n |", "|---|" + "---|" * len(METRICS) + "---|"]
        for row, row_stat in paired_stats(scores, reference).items():
            lines.append(f"| {row} | " + " | ".join(format_stat(row_stat[m], 4, signed=True) for m in METRICS) + f" | {row_stat[METRICS[0]].n} |")
    lines += ["", "## Setup", ""] + [f"- {key}: {value}" for key, value in setup.items()] + [""]
    return "\n".join(lines)


def write_markdown(path: Path, text: str) -> Path:
    return atomic_write_text(path, text)
