"""``builtin:mini-sdxl`` served from its weights folder: stock diffusers loads it bit-identically, the
export CLI copies it. The folder here is a few-step pretraining run (the shipped weights are checked the
same way in test_builtin_models once they are committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from dash_diffusion.models import mini
from dash_diffusion.models.builtin import resolve_model_path
from dash_diffusion.models.mini import MINI_MODEL_NAME
from dash_diffusion.models.mini.architecture import RESOLUTION
from dash_diffusion.models.mini.pretrain import PretrainConfig, pretrain

PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mini")
    options = dict(vae_steps=2, vae_batch=2, images=6, unet_steps=2, unet_batch=2, warmup_steps=1, checkpoint_every=1)
    return pretrain(PretrainConfig(work_dir=str(root / "work"), out=str(root / "weights"), **options))


@pytest.fixture
def served(weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(mini, "MINI_WEIGHTS", weights)
    return weights


def _load() -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path(MINI_MODEL_NAME))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image(pipe: StableDiffusionXLPipeline) -> np.ndarray:
    return pipe("a photo of a red ball on the beach", num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np").images[0]


def test_mini_loads_in_stock_diffusers_bit_identically(served: Path) -> None:
    assert resolve_model_path(MINI_MODEL_NAME) == str(served)
    first, second = _load(), _load()
    assert first.unet.config.addition_embed_type == "text_time"
    assert first.default_sample_size * first.vae_scale_factor == RESOLUTION
    for part in PARTS:
        left, right = getattr(first, part).state_dict(), getattr(second, part).state_dict()
        assert left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left), part
    image = _image(first)
    assert image.shape == (RESOLUTION, RESOLUTION, 3)
    assert np.array_equal(image, _image(second))


def test_mini_export_cli_copies_the_folder_and_refuses_a_full_one(served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dash_diffusion.models.mini.__main__ import main

    assert main(["--out", str(tmp_path / "copy")]) == 0
    copied = tmp_path / "copy"
    assert sorted(p.relative_to(copied) for p in copied.rglob("*")) == sorted(p.relative_to(served) for p in served.rglob("*"))
    assert (copied / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == (served / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert main(["--out", str(copied)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"], "no staging folder is left behind"
