"""Generating the benchmark images: one stock SDXL pipeline, adapters swapped in and out.

Image ``i`` of prompt ``p`` (``p`` = index in the full 25-prompt list) is drawn from the seed

    seed(p, i) = seed + 1000 * p + i

with its own CPU ``torch.Generator``, so the initial noise of an image depends only on (seed, p, i):
not on the adapter, the device, the batch it is in, ``--num_images`` or ``--prompts``. Every adapter
(and the base model) therefore renders the same prompts from the same noise, which makes per-image
comparisons between adapters paired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from dash_diffusion.errors import DashError

from .prompts import clip_t_text, format_prompt

SEED_STRIDE = 1000
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class ImageJob:
    """One image to generate: where it sits in the protocol, its seed and its two texts."""

    prompt_index: int
    image_index: int
    seed: int
    prompt: str
    clip_text: str


def image_seed(seed: int, prompt_index: int, image_index: int) -> int:
    """``seed + 1000 * prompt_index + image_index``."""
    return int(seed) + SEED_STRIDE * int(prompt_index) + int(image_index)


def plan_jobs(templates: Sequence[str], indices: Sequence[int], num_images: int, token: str, class_name: str, seed: int, text_kind: str = "class") -> list[ImageJob]:
    """The images of a run, prompt by prompt."""
    if not 1 <= num_images <= SEED_STRIDE:
        raise DashError(f"--num_images {num_images} is out of range: use 1 to {SEED_STRIDE}")
    return [
        ImageJob(p, i, image_seed(seed, p, i), format_prompt(templates[p], token, class_name), clip_t_text(templates[p], token, class_name, text_kind))
        for p in indices
        for i in range(num_images)
    ]


def resolve_device(spec: str) -> str:
    """``auto`` is ``cuda`` when available, else ``cpu``; anything else is checked and returned."""
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise DashError(f"--device {spec} was asked for but no CUDA GPU is available: use --device cpu")
    try:
        torch.device(spec)
    except RuntimeError as error:
        raise DashError(f"--device {spec!r} is not a torch device: use auto, cpu, cuda or cuda:N") from error
    return spec


def resolve_dtype(spec: str, device: str) -> Any:
    """``auto`` is float16 on CUDA and float32 elsewhere."""
    import torch

    if spec not in DTYPES:
        raise DashError(f"--dtype {spec!r} is not supported: use one of {', '.join(DTYPES)}")
    if spec == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, spec)


def _base_error(what: str, name: str, how: str) -> DashError:
    return DashError(f"cannot load the {what} '{name}': without hub access pass a local diffusers folder with {how}")


def load_pipeline(base: str, device: str, dtype: Any, variant: str | None = None, vae: str | None = None) -> Any:
    """A stock ``StableDiffusionXLPipeline`` on ``device`` (``builtin:tiny-sdxl`` accepted)."""
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline

    from dash_diffusion.models.builtin import resolve_model_path

    extra: dict[str, Any] = {"variant": variant} if variant else {}
    if vae:
        try:
            extra["vae"] = AutoencoderKL.from_pretrained(resolve_model_path(vae), dtype=dtype)
        except (OSError, ValueError) as error:
            raise _base_error("VAE", vae, "--vae /path/to/vae") from error
    try:
        pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path(base), dtype=dtype, **extra)
    except (OSError, ValueError) as error:
        raise _base_error("base model", base, "--base /path/to/sdxl, or --base builtin:tiny-sdxl") from error
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe: Any, jobs: Sequence[ImageJob], steps: int, guidance: float, resolution: int, batch_size: int) -> Iterator[tuple[ImageJob, Any]]:
    """Yield ``(job, PIL image)`` for every job; images of one prompt are batched ``batch_size`` at a time."""
    import torch

    groups: dict[int, list[ImageJob]] = {}
    for job in jobs:
        groups.setdefault(job.prompt_index, []).append(job)
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            generators = [torch.Generator(device="cpu").manual_seed(job.seed) for job in chunk]
            images = pipe(
                prompt=[job.prompt for job in chunk],
                num_inference_steps=steps,
                guidance_scale=guidance,
                height=resolution,
                width=resolution,
                generator=generators,
            ).images
            yield from zip(chunk, images)
