"""``evaluate_dreambooth.py --judges world``: the DreamBooth protocol on a held-out subject of the world.

The same harness as :mod:`.runner` (options, adapter checks, stock pipeline, adapters swapped in and out,
fixed seeds ``seed + 1000 p + i``), with the project's judges in place of DINO and CLIP
(:mod:`.world_bench.scoring`) and the subject's world prompts in place of the 25 DreamBooth prompts
(:mod:`.world_bench.prompts`; ``--prompts N`` takes N spread over scenes, colours and combinations):

1. options, output folder, the subject's reference photos (``--subject_dir``) and adapters are checked;
2. the judges are loaded and the references embedded;
3. the pipeline is loaded once; every row (the base model with the class prompts unless ``--no_base``,
   then each adapter with the identified prompts) is generated, saved and scored;
4. ``scores.csv``, ``results.md``, ``grid_<row>.png``, ``grid_compare.png`` and ``run.json`` are written.

Write a subject's photos with ``python -m dash_diffusion.eval.world_bench.photos_cli``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dash_diffusion.formats.safetensors_io import atomic_write_text

from .config import EvalConfig
from .generation import load_pipeline, resolve_device, resolve_dtype
from .grid import image_grid
from .prompts import select_prompts
from .record import file_record, hardware, versions
from .runner import check_adapters, check_outputs, use_row
from .subject import load_subject
from .world_bench.photos import subject_named
from .world_bench.prompts import pick_prompts, subject_prompts
from .world_bench.rows import RowResult, Sampling, render_row, world_jobs
from .world_bench.scoring import METRICS, WorldScore, WorldScorer
from .world_report import markdown, row_stats, write_markdown, write_scores_csv

logger = logging.getLogger(__name__)


@dataclass
class WorldEvalResult:
    """What a world evaluation produced."""

    output_dir: Path
    scores: list[WorldScore]
    files: dict[str, Path] = field(default_factory=dict)


def run_world(config: EvalConfig) -> WorldEvalResult:
    """Run the world protocol described in the module docstring."""
    started = time.perf_counter()
    out = check_outputs(config)
    subject = subject_named(config.world_subject or "")
    photos = load_subject(config.subject_dir, subject.object, "object")
    check_adapters(config)
    prompts = subject_prompts(subject.name, config.token.strip())
    indices = pick_prompts(prompts, len(select_prompts(tuple(p.text for p in prompts), config.prompts)))
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)

    from dash_diffusion.models.world_judges import load_judges

    judges = load_judges()
    scorer = WorldScorer(judges, photos.images)
    pipe = load_pipeline(config.base, device, dtype, config.variant, config.vae)
    sampling = Sampling(config.steps, config.guidance, config.resolution, config.batch_size)
    out.mkdir(parents=True, exist_ok=True)

    scores: list[WorldScore] = []
    rows: list[dict[str, Any]] = []
    results: dict[str, RowResult] = {}
    files: dict[str, Path] = {}
    for name, path in config.rows():
        tick = time.perf_counter()
        described = {"name": name, **use_row(pipe, path)}
        jobs = world_jobs(prompts, indices, config.num_images, config.seed, identified=path is not None)
        results[name] = render_row(pipe, scorer, name, prompts, jobs, sampling, out, Path("images") / name)
        scores += results[name].scores
        files[f"grid_{name}"] = out / f"grid_{name}.png"
        labels = [f"p{p:02d}  {jobs[k * config.num_images].prompt}" for k, p in enumerate(indices)]
        image_grid([[results[name].images[(p, i)] for i in range(config.num_images)] for p in indices], labels, config.grid_cell).save(files[f"grid_{name}"])
        described["seconds"] = time.perf_counter() - tick
        rows.append(described)
        means = ", ".join(f"{m} {stat.mean:.4f}" for m, stat in row_stats(results[name].scores)[name].items())
        logger.info("row %s: %d images in %.1f s; mean %s", name, len(results[name].scores), described["seconds"], means)

    if len(results) > 1:
        files["grid_compare"] = out / "grid_compare.png"
        labels = [f"p{p:02d}  {prompts[p].text}" for p in indices]
        image_grid([[results[name].images[(p, 0)] for name in results] for p in indices], labels, config.grid_cell, list(results)).save(files["grid_compare"])
    files["scores"] = write_scores_csv(out / "scores.csv", scores)
    setup = {
        "subject": f"{subject.name} ({subject.colour} {subject.object}, world instance never drawn in pretraining)",
        "references": f"`{photos.folder}` ({len(photos.images)} photos)",
        "base model": f"`{config.base}`",
        "sampling": f"{type(pipe.scheduler).__name__}, {config.steps} steps, guidance {config.guidance}, {config.resolution} px, {config.num_images} images per prompt",
        "seeds": f"{config.seed} + 1000 * prompt_index + image_index",
        "prompts": f"{len(indices)} of {len(prompts)} (identifier '{config.token}'; the base row gets the class prompts)",
        "judges": f"`{judges.path}`",
        "files": "`scores.csv` (per image), `grid_<row>.png`, `grid_compare.png`, `images/`, `run.json`",
    }
    sources = {name: path for name, path in config.rows()}
    files["results"] = write_markdown(out / "results.md", markdown(scores, config.reference_row(), sources, setup))
    record = {
        "protocol": "DreamBooth (Ruiz et al. 2023) with the world judges: subject fidelity, whole-image similarity, prompt fidelity",
        "options": config.to_dict(),
        "subject": {"name": subject.name, "object": subject.object, "colour": subject.colour, "references": [file_record(p) for p in photos.files]},
        "prompts": [asdict(prompts[p]) | {"index": p} for p in indices],
        "rows": rows,
        "metrics": list(METRICS),
        "judges": file_record(judges.path) if judges.path else None,
        "versions": versions(),
        "hardware": hardware(device),
        "seconds": time.perf_counter() - started,
    }
    files["run"] = atomic_write_text(out / "run.json", json.dumps(record, indent=2, default=str) + "\n")
    return WorldEvalResult(out, scores, files)
