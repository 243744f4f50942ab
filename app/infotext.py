"""Generation parameters in A1111's "parameters" text, stored in the PNG text chunk of every image.

The layout A1111, Forge and ComfyUI readers parse::

    a photo of sks robot on the beach <lora:demo:1>
    Negative prompt: blurry
    Steps: 25, Sampler: Euler a, CFG scale: 6, Seed: 1234, Size: 1024x1024, Model: ..., Lora weights: "demo: 1"
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from PIL import Image

from .settings import RenderSettings

PARAMETERS_KEY = "parameters"


def _number(value: float) -> str:
    return f"{value:g}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if re.search(r'[,:"\n]', value) else value


def lora_tag_name(name: str) -> str:
    """The name in ``<lora:NAME:w>``: the adapter's last path part without ``.safetensors``."""
    last = name.rstrip("/").rsplit("/", 1)[-1]
    return last[: -len(".safetensors")] if last.endswith(".safetensors") else last


def parameters_text(settings: RenderSettings, seed: int, adapters: Sequence[tuple[str, float]], model: str) -> str:
    """The A1111 ``parameters`` text of one image rendered with ``seed`` and ``adapters`` ((name, weight))."""
    tags = "".join(f" <lora:{lora_tag_name(name)}:{_number(weight)}>" for name, weight in adapters)
    lines = [settings.prompt.replace("\n", " ") + tags]
    if settings.negative_prompt:
        lines.append("Negative prompt: " + settings.negative_prompt.replace("\n", " "))
    fields = [
        ("Steps", str(settings.steps)),
        ("Sampler", settings.scheduler),
        ("CFG scale", _number(settings.guidance)),
        ("Seed", str(seed)),
        ("Size", f"{settings.width}x{settings.height}"),
        ("Model", _quoted(model)),
    ]
    if adapters:
        fields.append(("Lora weights", _quoted(", ".join(f"{name}: {_number(weight)}" for name, weight in adapters))))
    fields.append(("Version", "dash_diffusion app"))
    lines.append(", ".join(f"{key}: {value}" for key, value in fields))
    return "\n".join(lines)


def with_parameters(image: Image.Image, text: str) -> Image.Image:
    """``image`` carrying ``text`` as its PNG ``parameters`` chunk (Gradio's PNG encoder keeps text info)."""
    image.info[PARAMETERS_KEY] = text
    return image
