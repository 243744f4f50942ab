"""Describing a finished run: the setup section of ``results.md`` and the content of ``run.json``.

``run.json`` holds everything needed to reproduce or audit a table: every option, the prompts with
their seeds (``seed + 1000 p + i``), the reference photos and adapter files (size, SHA-256), the
adapters' own metadata, the scheduler configuration, the feature models (id, class, hub commit,
preprocessing), the metric definitions, library versions, the device and timings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import EvalConfig
from .features import ClipEmbedder, DinoEmbedder
from .generation import SEED_STRIDE, ImageJob
from .record import file_record, hardware, versions
from .subject import Subject


@dataclass
class RunContext:
    """What a run was made of, gathered by the runner."""

    config: EvalConfig
    subject: Subject
    templates: Sequence[str]
    indices: list[int]
    jobs: list[ImageJob]
    dino: DinoEmbedder
    clip: ClipEmbedder
    device: str
    dtype: Any
    pipe: Any

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")


def clip_t_note(ctx: RunContext) -> str:
    """How the CLIP-T text was formed, with an example."""
    token, noun = ctx.config.token, ctx.subject.class_name
    if ctx.config.clip_t_text == "class":
        return f"prompt without the identifier '{token}', e.g. 'a {noun} in the jungle'"
    return f"full prompt with the identifier, e.g. 'a {token} {noun} in the jungle'"


def setup(ctx: RunContext) -> dict[str, Any]:
    """The values :func:`.report.markdown` prints around the table."""
    c, s = ctx.config, ctx.subject
    details = {
        "base model": f"`{c.base}`" + (f", VAE `{c.vae}`" if c.vae else ""),
        "sampling": f"{type(ctx.pipe.scheduler).__name__}, {c.steps} steps, guidance {c.guidance}, {c.resolution}x{c.resolution}, {ctx.dtype_name} on {ctx.device}",
        "subject": f"`{s.folder}` ({len(s.images)} real photos), class '{s.class_name}', token '{c.token}', {s.kind} prompts",
        "prompts": f"{len(ctx.indices)} of 25 (indices {ctx.indices[0]}..{ctx.indices[-1]}), {c.num_images} images each",
        "seeds": f"{c.seed} + {SEED_STRIDE} * prompt_index + image_index",
        "DINO": f"`{ctx.dino.info.name}` ({ctx.dino.info.model_class}, CLS token, resize {ctx.dino.transform.resize} / crop {ctx.dino.transform.crop})",
        "CLIP": f"`{ctx.clip.info.name}` ({ctx.clip.info.model_class}, resize {ctx.clip.transform.resize} / crop {ctx.clip.transform.crop})",
        "CLIP-T text": clip_t_note(ctx),
        "files": "`scores.csv` (per image), `summary.csv` (per row and prompt), `paired.csv`, `grid_<row>.png`, `grid_compare.png`, `images/`, `run.json`",
    }
    return {
        "subject": s.folder.name,
        "class_name": s.class_name,
        "kind": s.kind,
        "num_prompts": len(ctx.indices),
        "num_images": c.num_images,
        "seed": c.seed,
        "clip_t_note": clip_t_note(ctx),
        "details": details,
    }


def _prompts(ctx: RunContext) -> list[dict[str, Any]]:
    entries = []
    for p in ctx.indices:
        mine = [job for job in ctx.jobs if job.prompt_index == p]
        entries.append({"index": p, "template": ctx.templates[p], "prompt": mine[0].prompt, "clip_t_text": mine[0].clip_text, "seeds": [job.seed for job in mine]})
    return entries


def run_record(ctx: RunContext, rows: list[dict[str, Any]], timings: dict[str, float], files: dict[str, Path], out: Path) -> dict[str, Any]:
    """The content of ``run.json``."""
    from dash_diffusion.models.builtin import resolve_model_path

    c, s = ctx.config, ctx.subject
    return {
        "protocol": "DreamBooth (Ruiz et al. 2023): DINO, CLIP-I, CLIP-T",
        "options": c.to_dict(),
        "subject": {
            "folder": str(s.folder.resolve()),
            "class_name": s.class_name,
            "kind": s.kind,
            "token": c.token,
            "references": [file_record(path) for path in s.files],
        },
        "prompts": _prompts(ctx),
        "seed_rule": f"seed + {SEED_STRIDE} * prompt_index + image_index (one CPU torch.Generator per image)",
        "generation": {
            "base": c.base,
            "base_resolved": resolve_model_path(c.base),
            "vae": c.vae,
            "variant": c.variant,
            "scheduler": type(ctx.pipe.scheduler).__name__,
            "scheduler_config": dict(ctx.pipe.scheduler.config),
            "dtype": ctx.dtype_name,
            "steps": c.steps,
            "guidance": c.guidance,
            "resolution": c.resolution,
            "batch_size": c.batch_size,
        },
        "rows": rows,
        "feature_models": {"dino": asdict(ctx.dino.info), "clip": asdict(ctx.clip.info)},
        "metrics": {
            "dino": "mean_j cos(DINO_CLS(generated), DINO_CLS(real_j)), L2-normalised embeddings",
            "clip_i": "mean_j cos(CLIP_image(generated), CLIP_image(real_j))",
            "clip_t": f"cos(CLIP_image(generated), CLIP_text(text)), text = {clip_t_note(ctx)}",
            "summary": "mean and sample std (ddof=1) over the generated images of a row; n images",
        },
        "versions": versions(),
        "hardware": hardware(ctx.device),
        "timings_s": timings,
        "files": {key: str(path.relative_to(out)) for key, path in files.items()},
    }
