"""Apply LoRA / LoRA-Dash adapter files to a stock diffusers SDXL pipeline (used by the app and the eval).

An adapter is named by a trainer output folder (its ``pytorch_lora_weights.safetensors`` is used) or
by a ``.safetensors`` file in diffusers or kohya layout. Every file is checked against the pipeline by
its header first (:func:`~dash_diffusion.formats.lora_files.check_lora_file`), then loaded with the stock
``pipe.load_lora_weights`` and weighted with ``pipe.set_adapters``. Applying a new set unloads the
previous one, so adapters never pile up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import DashError
from .export import DIFFUSERS_WEIGHT_NAME
from .lora_files import LoraFileInfo, check_lora_file


@dataclass
class AppliedAdapter:
    """One adapter in use: where it came from, its name in the pipeline, its weight and file info."""

    source: Path
    name: str
    weight: float
    info: LoraFileInfo


def adapter_file(source: str | Path) -> Path:
    """The LoRA file of ``source``: a folder's ``pytorch_lora_weights.safetensors``, or the file itself."""
    path = Path(source)
    if path.is_dir():
        path = path / DIFFUSERS_WEIGHT_NAME
        if not path.is_file():
            raise DashError(f"folder '{source}' has no {DIFFUSERS_WEIGHT_NAME}: pick a dash_diffusion output folder or a .safetensors LoRA file")
    elif not path.is_file():
        raise DashError(f"adapter '{source}' does not exist: check the path")
    return path


def _adapter_name(index: int, path: Path) -> str:
    stem = path.parent.name if path.name == DIFFUSERS_WEIGHT_NAME else path.stem
    return f"a{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", stem)[:40]


def apply_adapters(pipe: Any, adapters: Sequence[tuple[str | Path, float]]) -> list[AppliedAdapter]:
    """Unload whatever adapters ``pipe`` holds, then load and weight ``adapters`` ((source, weight) pairs).

    All files are checked before any is loaded, so a bad one leaves the pipeline as the base model.
    """
    checked = []
    for index, (source, weight) in enumerate(adapters):
        path = adapter_file(source)
        checked.append(AppliedAdapter(source=Path(source), name=_adapter_name(index, path), weight=float(weight), info=check_lora_file(path, pipe)))
    clear_adapters(pipe)
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # UNet-only files make diffusers warn about the text encoders
    try:
        for adapter in checked:
            path = adapter.info.path
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=adapter.name)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    if checked:
        pipe.set_adapters([a.name for a in checked], adapter_weights=[a.weight for a in checked])
    return checked


def clear_adapters(pipe: Any) -> None:
    """Remove every LoRA adapter from ``pipe`` (back to the base model)."""
    if getattr(pipe, "get_list_adapters", None) and any(pipe.get_list_adapters().values()):
        pipe.unload_lora_weights()
