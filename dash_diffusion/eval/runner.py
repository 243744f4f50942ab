"""One evaluation run: check inputs, load the feature models, generate every row, score, write.

Order of work (cheap checks first, so a mistake costs seconds, not a GPU hour):

1. options, subject photos, adapter files and the output folder are checked;
2. the DINO and CLIP models are loaded and the real photos and CLIP-T texts embedded;
3. the SDXL pipeline is loaded once; for every row (the base model unless ``--no_base``, then each
   ``--adapter``) the adapter is applied (the previous one unloaded), the images generated from the
   fixed seeds, saved as PNG, embedded and scored, and the row's grid written;
4. ``scores.csv``, ``summary.csv``, ``paired.csv``, ``results.md``, ``grid_compare.png`` and
   ``run.json`` are written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from dash_diffusion.errors import DashError
from dash_diffusion.images import list_image_files, load_rgb

from .config import EvalConfig
from .generation import SEED_STRIDE, ImageJob, generate, load_pipeline, plan_jobs, resolve_device, resolve_dtype
from .grid import image_grid
from .prompts import default_kind, infer_class, prompt_templates, select_prompts
from .record import file_record, hardware, versions, write_json
from .report import markdown, write_paired_csv, write_scores_csv, write_summary_csv
from .scores import METRICS, ImageScore, score_images
from .summary import PairedRow, SummaryRow, paired_rows, summary_rows

logger = logging.getLogger(__name__)


@dataclass
class Subject:
    """The subject under evaluation: its real photos, class noun and prompt kind."""

    folder: Path
    class_name: str
    kind: str
    files: list[Path]
    images: list[Image.Image]


@dataclass
class EvalResult:
    """What a run produced: the scores, their summaries and the files written."""

    output_dir: Path
    scores: list[ImageScore]
    summary: list[SummaryRow]
    paired: list[PairedRow]
    files: dict[str, Path] = field(default_factory=dict)


def load_subject(config: EvalConfig) -> Subject:
    """The reference photos of ``--subject_dir`` (EXIF-upright RGB) with the class and prompt kind."""
    folder = Path(config.subject_dir).expanduser()
    files = list_image_files(folder)
    pairs = [(path, load_rgb(path)) for path in files]
    usable = [(path, image) for path, image in pairs if image is not None]
    if not usable:
        raise DashError(f"subject folder '{folder}' holds no readable images: pass the folder of the subject's real photos with --subject_dir")
    class_name = config.class_name or infer_class(folder)
    if not class_name:
        raise DashError(f"cannot tell the class of '{folder}' from its name: pass --class_name, e.g. --class_name dog")
    kind = config.kind or default_kind(class_name)
    return Subject(folder, class_name, kind, [p for p, _ in usable], [i for _, i in usable])


def _check_outputs(config: EvalConfig) -> Path:
    out = Path(config.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise DashError(f"--output_dir '{out}' is a file: pass a folder")
    if (out / "run.json").exists() and not config.overwrite:
        raise DashError(f"--output_dir '{out}' already holds a run (run.json): pass --overwrite or another --output_dir")
    return out


def _check_adapters(config: EvalConfig) -> None:
    from dash_diffusion.pipeline_adapters import adapter_file

    for _, path in config.adapters:
        adapter_file(path)


def _use_row(pipe: Any, path: str | None) -> dict[str, Any]:
    """Apply one adapter at weight 1 (or none for the base row) and describe what was loaded."""
    from dash_diffusion.pipeline_adapters import apply_adapters, clear_adapters

    if path is None:
        clear_adapters(pipe)
        return {"path": None}
    applied = apply_adapters(pipe, [(path, 1.0)])[0]
    info = applied.info
    return {"path": str(path), "weight": applied.weight, "file": file_record(info.path), "layout": info.layout, "rank": info.rank, "num_modules": info.num_modules, "metadata": info.metadata}


def _save(image: Image.Image, out: Path, row: str, job: ImageJob) -> str:
    relative = Path("images") / row / f"p{job.prompt_index:02d}_i{job.image_index:02d}_s{job.seed}.png"
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    image.save(out / relative, format="PNG")
    return relative.as_posix()


def _prompt_grid(jobs: Sequence[ImageJob], images: dict[tuple[int, int], Image.Image], cell: int) -> Image.Image:
    prompt_indices = sorted({job.prompt_index for job in jobs})
    count = max(job.image_index for job in jobs) + 1
    prompts = {job.prompt_index: job.prompt for job in jobs}
    cells = [[images.get((p, i)) for i in range(count)] for p in prompt_indices]
    return image_grid(cells, [f"p{p:02d}  {prompts[p]}" for p in prompt_indices], cell)


def run(config: EvalConfig) -> EvalResult:
    """Run the whole protocol described in the module docstring and return its results."""
    started = time.perf_counter()
    out = _check_outputs(config)
    subject = load_subject(config)
    _check_adapters(config)
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
    texts = clip.embed_texts([job.clip_text for job in jobs])
    timings["feature_models_and_references"] = time.perf_counter() - tick
    logger.info("subject %s: %d photos, class '%s', %s prompts; %d images per row", subject.folder, len(subject.images), subject.class_name, subject.kind, len(jobs))

    tick = time.perf_counter()
    pipe = load_pipeline(config.base, device, dtype, config.variant, config.vae)
    timings["load_pipeline"] = time.perf_counter() - tick
    out.mkdir(parents=True, exist_ok=True)

    scores: list[ImageScore] = []
    rows_info: list[dict[str, Any]] = []
    firsts: dict[str, dict[int, Image.Image]] = {}
    files: dict[str, Path] = {}
    for name, path in config.rows():
        tick = time.perf_counter()
        row_info = {"name": name, **_use_row(pipe, path)}
        images: dict[tuple[int, int], Image.Image] = {}
        saved: list[str] = []
        for job, image in generate(pipe, jobs, config.steps, config.guidance, config.resolution, config.batch_size):
            images[(job.prompt_index, job.image_index)] = image
            saved.append(_save(image, out, name, job))
        generated = [images[(job.prompt_index, job.image_index)] for job in jobs]
        row_scores = score_images(name, jobs, saved, dino.embed_images(generated), dino_refs, clip.embed_images(generated), clip_refs, texts)
        scores += row_scores
        files[f"grid_{name}"] = out / f"grid_{name}.png"
        _prompt_grid(jobs, images, config.grid_cell).save(files[f"grid_{name}"])
        firsts[name] = {p: images[(p, 0)] for p in indices}
        row_info["seconds"] = time.perf_counter() - tick
        rows_info.append(row_info)
        means = ", ".join(f"{m} {sum(s.metric(m) for s in row_scores) / len(row_scores):.4f}" for m in METRICS)
        logger.info("row %s: %d images in %.1f s; %s", name, len(row_scores), row_info["seconds"], means)

    summary = summary_rows(scores)
    reference = config.reference_row()
    paired = paired_rows(scores, reference) if reference else []
    files["scores"] = write_scores_csv(out / "scores.csv", scores)
    files["summary"] = write_summary_csv(out / "summary.csv", summary)
    if paired:
        files["paired"] = write_paired_csv(out / "paired.csv", paired)
    if len(firsts) > 1:
        names = list(firsts)
        cells = [[firsts[n][p] for n in names] for p in indices]
        files["grid_compare"] = out / "grid_compare.png"
        labels = {job.prompt_index: f"p{job.prompt_index:02d}  {job.prompt}" for job in jobs}
        image_grid(cells, [labels[p] for p in indices], config.grid_cell, names).save(files["grid_compare"])

    setup = _setup(config, subject, indices, dino, clip, device, dtype, pipe)
    sources = {name: path for name, path in config.rows() if path}
    files["results"] = out / "results.md"
    files["results"].write_text(markdown(summary, paired, sources, setup), encoding="utf-8")
    timings["total"] = time.perf_counter() - started
    files["run"] = write_json(out / "run.json", _run_record(config, subject, templates, indices, jobs, rows_info, dino, clip, device, dtype, pipe, timings, files, out))
    logger.info("results in %s", files["results"])
    return EvalResult(out, scores, summary, paired, files)


def _clip_t_note(config: EvalConfig, subject: Subject) -> str:
    if config.clip_t_text == "class":
        return f"prompt without the identifier '{config.token}', e.g. 'a {subject.class_name} in the jungle'"
    return f"full prompt with the identifier, e.g. 'a {config.token} {subject.class_name} in the jungle'"


def _setup(config: EvalConfig, subject: Subject, indices: list[int], dino: Any, clip: Any, device: str, dtype: Any, pipe: Any) -> dict[str, Any]:
    details = {
        "base model": f"`{config.base}`" + (f", VAE `{config.vae}`" if config.vae else ""),
        "sampling": f"{type(pipe.scheduler).__name__}, {config.steps} steps, guidance {config.guidance}, {config.resolution}x{config.resolution}, {str(dtype).replace('torch.', '')} on {device}",
        "subject": f"`{subject.folder}` ({len(subject.images)} real photos), class '{subject.class_name}', token '{config.token}', {subject.kind} prompts",
        "prompts": f"{len(indices)} of 25 (indices {indices[0]}..{indices[-1]}), {config.num_images} images each",
        "seeds": f"{config.seed} + {SEED_STRIDE} * prompt_index + image_index",
        "DINO": f"`{dino.info.name}` ({dino.info.model_class}, CLS token, resize {dino.transform.resize} / crop {dino.transform.crop})",
        "CLIP": f"`{clip.info.name}` ({clip.info.model_class}, resize {clip.transform.resize} / crop {clip.transform.crop})",
        "CLIP-T text": _clip_t_note(config, subject),
        "files": "`scores.csv` (per image), `summary.csv` (per row and prompt), `paired.csv`, `grid_<row>.png`, `grid_compare.png`, `images/`, `run.json`",
    }
    return {"subject": subject.folder.name, "class_name": subject.class_name, "kind": subject.kind, "num_prompts": len(indices), "num_images": config.num_images, "seed": config.seed, "clip_t_note": _clip_t_note(config, subject), "details": details}


def _run_record(config: EvalConfig, subject: Subject, templates: Sequence[str], indices: list[int], jobs: Sequence[ImageJob], rows: list[dict[str, Any]], dino: Any, clip: Any, device: str, dtype: Any, pipe: Any, timings: dict[str, float], files: dict[str, Path], out: Path) -> dict[str, Any]:
    from dash_diffusion.tiny import resolve_model_path

    prompts = [
        {"index": p, "template": templates[p], "prompt": next(j.prompt for j in jobs if j.prompt_index == p), "clip_t_text": next(j.clip_text for j in jobs if j.prompt_index == p), "seeds": [j.seed for j in jobs if j.prompt_index == p]}
        for p in indices
    ]
    return {
        "protocol": "DreamBooth (Ruiz et al. 2023): DINO, CLIP-I, CLIP-T",
        "options": config.to_dict(),
        "subject": {"folder": str(subject.folder.resolve()), "class_name": subject.class_name, "kind": subject.kind, "token": config.token, "references": [file_record(p) for p in subject.files]},
        "prompts": prompts,
        "seed_rule": f"seed + {SEED_STRIDE} * prompt_index + image_index (CPU torch.Generator per image)",
        "generation": {"base": config.base, "base_resolved": resolve_model_path(config.base), "vae": config.vae, "variant": config.variant, "scheduler": type(pipe.scheduler).__name__, "scheduler_config": dict(pipe.scheduler.config), "dtype": str(dtype).replace("torch.", ""), "steps": config.steps, "guidance": config.guidance, "resolution": config.resolution, "batch_size": config.batch_size},
        "rows": rows,
        "feature_models": {"dino": asdict(dino.info), "clip": asdict(clip.info)},
        "metrics": {
            "dino": "mean_j cos(DINO_CLS(generated), DINO_CLS(real_j)), L2-normalised embeddings",
            "clip_i": "mean_j cos(CLIP_image(generated), CLIP_image(real_j))",
            "clip_t": "cos(CLIP_image(generated), CLIP_text(clip_t_text))",
            "summary": "mean and sample std (ddof=1) over generated images; n images",
        },
        "versions": versions(),
        "hardware": hardware(device),
        "timings_s": timings,
        "files": {key: str(path.relative_to(out)) for key, path in files.items()},
    }
