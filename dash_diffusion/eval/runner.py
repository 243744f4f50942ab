"""One evaluation run: check inputs, load the feature models, generate every row, score, write.

Order of work (cheap checks first, so a mistake costs seconds, not a GPU hour):

1. options, output folder, subject photos and adapter files are checked;
2. the DINO and CLIP models are loaded and the real photos and CLIP-T texts embedded;
3. the SDXL pipeline is loaded once; for every row (the base model unless ``--no_base``, then each
   ``--adapter``) the adapter is applied (the previous one unloaded), the images generated from the
   fixed seeds, saved as PNG, embedded and scored, and the row's grid written;
4. ``scores.csv``, ``summary.csv``, ``paired.csv``, ``grid_compare.png``, ``results.md`` and
   ``run.json`` are written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from dash_diffusion.errors import DashError

from .config import EvalConfig
from .describe import RunContext, run_record, setup
from .generation import ImageJob, generate, load_pipeline, plan_jobs, resolve_device, resolve_dtype
from .grid import image_grid
from .prompts import prompt_templates, select_prompts
from .record import file_record, write_json
from .report import markdown, write_paired_csv, write_scores_csv, write_summary_csv
from .scores import METRICS, ImageScore, score_images
from .subject import load_subject
from .summary import PairedRow, SummaryRow, paired_rows, summary_rows

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """What a run produced: the scores, their summaries and the files written."""

    output_dir: Path
    scores: list[ImageScore]
    summary: list[SummaryRow]
    paired: list[PairedRow]
    files: dict[str, Path] = field(default_factory=dict)


def check_outputs(config: EvalConfig) -> Path:
    """The output folder, refused when it is a file or already holds a run (unless ``--overwrite``)."""
    out = Path(config.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise DashError(f"--output_dir '{out}' is a file: pass a folder")
    if (out / "run.json").exists() and not config.overwrite:
        raise DashError(f"--output_dir '{out}' already holds a run (run.json): pass --overwrite or another --output_dir")
    return out


def check_adapters(config: EvalConfig) -> None:
    """Fail early (one line) for an adapter path that is not a LoRA file or trainer output folder."""
    from dash_diffusion.formats.pipeline_adapters import adapter_file

    for _, path in config.adapters:
        adapter_file(path)


def use_row(pipe: Any, path: str | None) -> dict[str, Any]:
    """Apply one adapter at weight 1 (or none for the base row) and describe what was loaded."""
    from dash_diffusion.formats.pipeline_adapters import apply_adapters, clear_adapters

    if path is None:
        clear_adapters(pipe)
        return {"path": None}
    quiet = logging.getLogger("diffusers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "no LoRA keys for the text encoder" is expected for UNet-only adapters
    try:
        applied = apply_adapters(pipe, [(path, 1.0)])[0]
    finally:
        quiet.setLevel(level)
    info = applied.info
    return {
        "path": str(path),
        "weight": applied.weight,
        "file": file_record(info.path),
        "layout": info.layout,
        "rank": info.rank,
        "num_modules": info.num_modules,
        "metadata": info.metadata,
    }


def _save(image: Image.Image, out: Path, row: str, job: ImageJob) -> str:
    relative = Path("images") / row / f"p{job.prompt_index:02d}_i{job.image_index:02d}_s{job.seed}.png"
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    image.save(out / relative, format="PNG")
    return relative.as_posix()


def _labels(jobs: Sequence[ImageJob]) -> dict[int, str]:
    return {job.prompt_index: f"p{job.prompt_index:02d}  {job.prompt}" for job in jobs}


def _row_grid(jobs: Sequence[ImageJob], images: dict[tuple[int, int], Image.Image], cell: int) -> Image.Image:
    """Prompts x images of one row."""
    labels = _labels(jobs)
    count = max(job.image_index for job in jobs) + 1
    cells = [[images.get((p, i)) for i in range(count)] for p in labels]
    return image_grid(cells, list(labels.values()), cell)


def _compare_grid(jobs: Sequence[ImageJob], firsts: dict[str, dict[int, Image.Image]], cell: int) -> Image.Image:
    """Prompts x rows, the first image of every prompt side by side."""
    labels = _labels(jobs)
    cells = [[firsts[name][p] for name in firsts] for p in labels]
    return image_grid(cells, list(labels.values()), cell, list(firsts))


def _text_embeddings(clip: Any, jobs: Sequence[ImageJob]) -> np.ndarray:
    """One CLIP text embedding per job; each distinct text embedded alone, so no padding or batch effects."""
    by_text = {text: clip.embed_texts([text])[0] for text in sorted({job.clip_text for job in jobs})}
    return np.stack([by_text[job.clip_text] for job in jobs])


def run(config: EvalConfig) -> EvalResult:
    """Run the whole protocol described in the module docstring and return its results."""
    started = time.perf_counter()
    out = check_outputs(config)
    subject = load_subject(config.subject_dir, config.class_name, config.kind)
    check_adapters(config)
    templates = prompt_templates(subject.kind)
    indices = select_prompts(templates, config.prompts)
    jobs = plan_jobs(templates, indices, config.num_images, config.token, subject.class_name, config.seed, config.clip_t_text)
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)

    from .features import load_clip, load_dino

    timings: dict[str, float] = {}
    tick = time.perf_counter()
    dino, clip = load_dino(config.dino_model, device), load_clip(config.clip_model, device)
    dino_refs, clip_refs = dino.embed_images(subject.images), clip.embed_images(subject.images)
    texts = _text_embeddings(clip, jobs)
    timings["feature_models_and_references"] = time.perf_counter() - tick
    logger.info("subject %s: %d photos, class '%s', %s prompts; %d images per row", subject.folder, len(subject.images), subject.class_name, subject.kind, len(jobs))

    tick = time.perf_counter()
    pipe = load_pipeline(config.base, device, dtype, config.variant, config.vae)
    timings["load_pipeline"] = time.perf_counter() - tick
    ctx = RunContext(config, subject, templates, indices, jobs, dino, clip, device, dtype, pipe)
    out.mkdir(parents=True, exist_ok=True)

    scores: list[ImageScore] = []
    rows: list[dict[str, Any]] = []
    firsts: dict[str, dict[int, Image.Image]] = {}
    files: dict[str, Path] = {}
    for name, path in config.rows():
        tick = time.perf_counter()
        row = {"name": name, **use_row(pipe, path)}
        images: dict[tuple[int, int], Image.Image] = {}
        saved: list[str] = []
        for job, image in generate(pipe, jobs, config.steps, config.guidance, config.resolution, config.batch_size):
            images[(job.prompt_index, job.image_index)] = image
            saved.append(_save(image, out, name, job))
        generated = [images[(job.prompt_index, job.image_index)] for job in jobs]
        row_scores = score_images(name, jobs, saved, dino.embed_images(generated), dino_refs, clip.embed_images(generated), clip_refs, texts)
        scores += row_scores
        files[f"grid_{name}"] = out / f"grid_{name}.png"
        _row_grid(jobs, images, config.grid_cell).save(files[f"grid_{name}"])
        firsts[name] = {p: images[(p, 0)] for p in indices}
        row["seconds"] = time.perf_counter() - tick
        rows.append(row)
        means = ", ".join(f"{m} {np.mean([s.metric(m) for s in row_scores]):.4f}" for m in METRICS)
        logger.info("row %s: %d images in %.1f s; mean %s", name, len(row_scores), row["seconds"], means)

    summary = summary_rows(scores)
    reference = config.reference_row()
    paired = paired_rows(scores, reference) if reference else []
    files["scores"] = write_scores_csv(out / "scores.csv", scores)
    files["summary"] = write_summary_csv(out / "summary.csv", summary)
    if paired:
        files["paired"] = write_paired_csv(out / "paired.csv", paired)
    if len(firsts) > 1:
        files["grid_compare"] = out / "grid_compare.png"
        _compare_grid(jobs, firsts, config.grid_cell).save(files["grid_compare"])
    files["results"] = out / "results.md"
    sources = {name: path for name, path in config.rows() if path}
    files["results"].write_text(markdown(summary, paired, sources, setup(ctx)), encoding="utf-8")
    timings["total"] = time.perf_counter() - started
    files["run"] = write_json(out / "run.json", run_record(ctx, rows, timings, files, out))
    logger.info("results in %s", files["results"])
    return EvalResult(out, scores, summary, paired, files)
