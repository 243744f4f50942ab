"""``builtin:mini-sdxl``: a small SDXL (:mod:`.architecture`) pretrained by this project on its procedural
world (:mod:`dash_diffusion.models.world`) with :mod:`.pretrain`; its tokenizer (:mod:`.tokenizer`) makes
every word of the world one token. The pretrained pipeline ships in ``weights/`` (a diffusers folder);
``python -m dash_diffusion.models.mini --out DIR`` copies it to a folder of your own."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dash_diffusion.errors import DashError

from ..tiny import is_complete_pipeline

MINI_MODEL_NAME = "builtin:mini-sdxl"
MINI_WEIGHTS = Path(__file__).resolve().parent / "weights"


def mini_model_folder() -> Path:
    """The shipped diffusers folder of ``builtin:mini-sdxl``; :class:`DashError` when it is missing."""
    if not is_complete_pipeline(MINI_WEIGHTS):
        raise DashError(
            f"the weights of {MINI_MODEL_NAME} are missing from {MINI_WEIGHTS}; reinstall dash_diffusion, "
            f"or pretrain them with: python -m dash_diffusion.models.mini.pretrain --out {MINI_WEIGHTS}"
        )
    return MINI_WEIGHTS


def save_mini_sdxl(out_dir: str | Path) -> Path:
    """Copy the shipped pipeline folder to ``out_dir`` (which must not exist or be empty), atomically:
    into a staging folder beside it, then renamed into place."""
    source = mini_model_folder()
    target = Path(out_dir).expanduser().absolute()
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise DashError(f"output path {target} already exists and is not an empty folder; delete it or pick a new one")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(staging, 0o755)
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
