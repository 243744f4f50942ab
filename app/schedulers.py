"""Sampler names as A1111 users know them, mapped to diffusers schedulers built with ``from_config``."""

from __future__ import annotations

from typing import Any

from dash_diffusion.errors import DashError

#: name -> (diffusers class name, extra config); every class here works without optional packages.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
}
DEFAULT_SCHEDULER = "Euler"
SCHEDULER_NAMES: tuple[str, ...] = tuple(SCHEDULERS)


def make_scheduler(name: str, base_config: Any) -> Any:
    """A fresh scheduler ``name`` built from the base model's scheduler config."""
    if name not in SCHEDULERS:
        raise DashError(f"unknown scheduler {name!r}: use one of {', '.join(SCHEDULER_NAMES)}")
    import diffusers

    class_name, extra = SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(base_config, **extra)
