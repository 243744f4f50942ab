"""Loading the base SDXL pipeline once: on the GPU in float16 where there is one, else the CPU in float32."""

from __future__ import annotations

from typing import Any

from dash_diffusion.errors import DashError
from dash_diffusion.models.builtin import resolve_model_path

DEFAULT_BASE = "stabilityai/stable-diffusion-xl-base-1.0"


def pick_device() -> tuple[str, Any]:
    """``("cuda", float16)`` when a CUDA GPU is usable, else ``("cpu", float32)``."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.float16
    return "cpu", torch.float32


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_pipeline(base: str, device: str | None = None) -> Any:
    """A ready ``StableDiffusionXLPipeline`` for ``base`` (hub id, local diffusers folder or
    ``builtin:mini-sdxl``, ``builtin:tiny-sdxl``); :class:`DashError` with one line when it cannot be loaded."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    chosen, dtype = pick_device()
    if device is not None:
        chosen, dtype = device, (torch.float16 if device.startswith("cuda") else torch.float32)
    path = resolve_model_path(base)
    try:
        pipe = StableDiffusionXLPipeline.from_pretrained(path, dtype=dtype)  # diffusers>=0.40 takes dtype=
    except Exception as error:  # hub/offline/format errors come in many types; the user needs one line
        raise DashError(
            f"cannot load base model '{base}' ({type(error).__name__}: {_short(error)}): pass a local diffusers "
            "SDXL folder or builtin:tiny-sdxl with --base, or allow hub access to download it"
        ) from error
    try:
        pipe = pipe.to(chosen)
    except RuntimeError as error:  # includes torch.cuda.OutOfMemoryError
        raise DashError(f"cannot move base model '{base}' to {chosen} ({_short(error)}): free GPU memory or use a smaller model") from error
    pipe.set_progress_bar_config(disable=True)
    return pipe
