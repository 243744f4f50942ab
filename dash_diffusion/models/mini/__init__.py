"""``builtin:mini-sdxl``: a small SDXL (:mod:`.architecture`) pretrained by this project on its procedural
world (:mod:`dash_diffusion.models.world`) with :mod:`.pretrain`; its tokenizer (:mod:`.tokenizer`) makes
every word of the world one token. The pretrained pipeline ships in ``weights/`` (a diffusers folder)."""

from __future__ import annotations

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
