"""Writing the results: per-image CSV, summary CSV, paired-difference CSV and the markdown table.

Numbers in the CSVs carry 8 decimals; the markdown shows ``mean ± std`` with 3 decimals (4 for
paired differences) and ``n``. A std printed as ``n/a`` means fewer than two images.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

from .metrics import Stat
from .scores import METRIC_LABELS, METRICS, ImageScore
from .summary import PairedRow, SummaryRow

SCORE_COLUMNS = ("adapter", "prompt_index", "image_index", "seed", "prompt", "clip_t_text", "file", *METRICS)


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.8f}"


def write_scores_csv(path: Path, scores: Sequence[ImageScore]) -> Path:
    """One row per generated image."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCORE_COLUMNS)
        for s in scores:
            writer.writerow([s.adapter, s.prompt_index, s.image_index, s.seed, s.prompt, s.clip_text, s.file, *(_number(s.metric(m)) for m in METRICS)])
    return path


def _stat_columns(prefix: str = "") -> list[str]:
    return [f"{prefix}{m}_{part}" for m in METRICS for part in ("mean", "std")]


def _stat_values(stats: dict[str, Stat]) -> list[str]:
    return [_number(getattr(stats[m], part)) for m in METRICS for part in ("mean", "std")]


def write_summary_csv(path: Path, rows: Sequence[SummaryRow]) -> Path:
    """One row per (adapter, all prompts) and per (adapter, prompt)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["adapter", "prompt_index", "prompt", "n", *_stat_columns()])
        for row in rows:
            index = "all" if row.prompt_index is None else row.prompt_index
            writer.writerow([row.adapter, index, row.prompt, row.stats[METRICS[0]].n, *_stat_values(row.stats)])
    return path


def write_paired_csv(path: Path, rows: Sequence[PairedRow]) -> Path:
    """One row per adapter compared with the reference adapter."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["adapter", "reference", "n", *_stat_columns("delta_")])
        for row in rows:
            writer.writerow([row.adapter, row.reference, row.stats[METRICS[0]].n, *_stat_values(row.stats)])
    return path


def format_stat(stat: Stat, digits: int = 3, signed: bool = False) -> str:
    """``0.512 ± 0.031`` (std ``n/a`` when undefined)."""
    sign = "+" if signed else ""
    std = "n/a" if math.isnan(stat.std) else f"{stat.std:.{digits}f}"
    return f"{stat.mean:{sign}.{digits}f} ± {std}"


def markdown(summary: Sequence[SummaryRow], paired: Sequence[PairedRow], sources: dict[str, str], setup: dict[str, Any]) -> str:
    """``results.md``: rows x metrics table, paired differences, then the setup that produced them."""
    header = " | ".join(METRIC_LABELS[m] for m in METRICS)
    lines = [
        f"# DreamBooth evaluation: {setup['subject']} ({setup['class_name']}, {setup['kind']} prompts)",
        "",
        f"| row | adapter | {header} | n |",
        "|---|---|" + "---|" * len(METRICS) + "---|",
    ]
    for row in summary:
        if row.prompt_index is None:
            cells = " | ".join(format_stat(row.stats[m]) for m in METRICS)
            lines.append(f"| {row.adapter} | {sources.get(row.adapter) or '(none: base model)'} | {cells} | {row.stats[METRICS[0]].n} |")
    lines += [
        "",
        f"Mean ± sample standard deviation over the n generated images of a row ({setup['num_prompts']} prompts x "
        f"{setup['num_images']} images, seed of image i of prompt p = {setup['seed']} + 1000 p + i, identical for every row). "
        "DINO and CLIP-I: mean cosine similarity to the real photos; CLIP-T: cosine similarity to the prompt "
        f"text ({setup['clip_t_note']}). Per-prompt statistics are in `summary.csv`, per-image scores in `scores.csv`.",
    ]
    if paired:
        delta = " | ".join(f"Δ{METRIC_LABELS[m]}" for m in METRICS)
        lines += ["", f"## Paired differences against `{paired[0].reference}` (same prompt and seed)", "", f"| adapter | {delta} | n |", "|---|" + "---|" * len(METRICS) + "---|"]
        for row in paired:
            lines.append(f"| {row.adapter} | " + " | ".join(format_stat(row.stats[m], 4, signed=True) for m in METRICS) + f" | {row.stats[METRICS[0]].n} |")
    lines += ["", "## Setup", ""]
    lines += [f"- {key}: {value}" for key, value in setup["details"].items()]
    lines.append("")
    return "\n".join(lines)
