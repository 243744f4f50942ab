"""The ``builtin:mini-sdxl`` weights that ship with the package: within the size budget, loaded
bit-identically by stock diffusers, v-prediction, and copied out by the export CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionXLPipeline

from dash_diffusion.models.builtin import resolve_model_path
from dash_diffusion.models.mini import MINI_MODEL_NAME, MINI_WEIGHTS
from dash_diffusion.models.tiny import is_complete_pipeline

BUDGET_BYTES = 25 * 1024 * 1024  # the limit for weights in git


def _load() -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path(MINI_MODEL_NAME))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_shipped_weights_fit_the_budget() -> None:
    assert is_complete_pipeline(MINI_WEIGHTS)
    size = sum(path.stat().st_size for path in MINI_WEIGHTS.rglob("*") if path.is_file())
    assert size <= BUDGET_BYTES, f"{size / 2**20:.1f} MiB"


def test_shipped_weights_load_bit_identically_with_v_prediction() -> None:
    first, second = _load(), _load()
    assert first.scheduler.config.prediction_type == "v_prediction"
    assert first.unet.config.addition_embed_type == "text_time"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    images = [pipe("a photo of a red ball on the beach", num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np").images[0] for pipe in (first, second)]
    assert np.array_equal(images[0], images[1]) and images[0].shape == (128, 128, 3)


def test_export_cli_copies_the_shipped_folder(tmp_path: Path) -> None:
    from dash_diffusion.models.mini.__main__ import main

    assert main(["--out", str(tmp_path / "copy")]) == 0
    shipped = sorted(p.relative_to(MINI_WEIGHTS) for p in MINI_WEIGHTS.rglob("*") if p.is_file())
    copied = sorted(p.relative_to(tmp_path / "copy") for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert shipped == copied
    assert all((MINI_WEIGHTS / p).read_bytes() == (tmp_path / "copy" / p).read_bytes() for p in shipped)
