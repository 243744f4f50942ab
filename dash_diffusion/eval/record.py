"""What ``run.json`` records besides the options: software versions, hardware and file fingerprints.

Files (reference photos, adapter weights) are identified by name, size and SHA-256, so a table can be
traced back to the exact inputs that produced it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "diffusers", "transformers", "peft", "numpy", "pillow", "safetensors")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path) -> dict[str, Any]:
    target = Path(path)
    return {"path": str(target), "bytes": target.stat().st_size, "sha256": sha256(target)}


def versions() -> dict[str, str | None]:
    from dash_diffusion import __version__

    found: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform(), "dash_diffusion": __version__}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def hardware(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": device, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
    return info


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return path
