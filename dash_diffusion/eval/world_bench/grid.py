"""The study's image grid: per subject and prompt, a training photo, the base model and every method.

Cells are the first image of the prompt in the runs of one seed (the same noise in every column), read
back from the runs' stored files; a run that is missing leaves a grey cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from dash_diffusion.eval.grid import image_grid

from .methods import BASE, label_of, run_folder
from .photos import training_photos
from .prompts import KINDS


def grid_prompts(record: dict[str, Any], per_kind: int = 1) -> list[dict[str, Any]]:
    """The first ``per_kind`` image-0 scores of each prompt kind in a run's record."""
    chosen = []
    for kind in KINDS:
        chosen += [s for s in record["scores"] if s["kind"] == kind and s["image_index"] == 0][:per_kind]
    return chosen


def study_grid(root: Path, records: Sequence[dict[str, Any]], seed: int, cell: int = 128) -> Image.Image:
    """Rows (subject, prompt), columns [training photo, each method in record order] for ``seed``."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    by_run = {(r["subject"], r["method"]): r for r in records if r["seed"] == seed}
    rows, labels = [], []
    for subject in dict.fromkeys(r["subject"] for r in records):
        labelled = sorted(methods, key=lambda m: m == BASE)  # label rows with an identified prompt
        first = next((by_run[(subject, m)] for m in labelled if (subject, m) in by_run), None)
        if first is None:
            continue
        photo = training_photos(subject)[0].image
        for score in grid_prompts(first):
            cells: list[Image.Image | None] = [photo]
            for method in methods:
                run = by_run.get((subject, method))
                match = [s for s in run["scores"] if s["prompt_index"] == score["prompt_index"] and s["image_index"] == 0] if run else []
                cells.append(Image.open(run_folder(root, subject, method, seed) / match[0]["file"]).convert("RGB") if match else None)
            rows.append(cells)
            labels.append(f"{subject}: {score['prompt']}")
    return image_grid(rows, labels, cell, ["training photo", *(label_of(m) for m in methods)])
