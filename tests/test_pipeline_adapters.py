"""Applying adapters to a stock pipeline: weights, switching, several at once, bad files."""

from __future__ import annotations

import pytest
import torch
from dash_helpers import perturb_adapter, unet_inputs, unet_output

from dash_diffusion import DashConfig, DashError, inject_dash, save_adapter
from dash_diffusion.errors import AdapterMismatchError
from dash_diffusion.formats.pipeline_adapters import apply_adapters, clear_adapters
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline


@pytest.fixture(scope="module")
def two_adapters(tmp_path_factory):
    folders = []
    for seed in (1, 2):
        pipe = build_tiny_sdxl_pipeline()
        inject_dash(pipe.unet, DashConfig(rank=2, num_directions=3))
        perturb_adapter(pipe.unet, seed=seed, scale=0.1)
        folder = tmp_path_factory.mktemp(f"adapter{seed}")
        save_adapter(folder, pipe.unet)
        folders.append(folder)
    return folders


def test_weights_switching_and_unloading(two_adapters):
    pipe = build_tiny_sdxl_pipeline()
    inputs = unet_inputs(pipe.unet)
    base = unet_output(pipe.unet, inputs)
    first, second = two_adapters
    applied = apply_adapters(pipe, [(first, 0.0)])
    assert applied[0].info.rank == 5
    assert torch.equal(unet_output(pipe.unet, inputs), base)
    apply_adapters(pipe, [(first, 1.0)])
    one = unet_output(pipe.unet, inputs)
    assert (one - base).abs().max() > 1e-3
    apply_adapters(pipe, [(first, 1.0), (second / "lora_dash_kohya.safetensors", 1.0)])
    both = unet_output(pipe.unet, inputs)
    assert (both - one).abs().max() > 1e-3
    assert len(pipe.get_list_adapters()["unet"]) == 2
    apply_adapters(pipe, [(first, 1.0)])
    assert len(pipe.get_list_adapters()["unet"]) == 1, "switching must unload the previous adapters"
    assert (unet_output(pipe.unet, inputs) - one).abs().max() <= 1e-5
    clear_adapters(pipe)
    assert (unet_output(pipe.unet, inputs) - base).abs().max() <= 1e-6


def test_bad_adapter_leaves_pipeline_untouched(two_adapters, tmp_path):
    pipe = build_tiny_sdxl_pipeline()
    with pytest.raises(DashError, match="does not exist"):
        apply_adapters(pipe, [(tmp_path / "missing", 1.0)])
    with pytest.raises(DashError, match="no pytorch_lora_weights"):
        apply_adapters(pipe, [(tmp_path, 1.0)])
    with pytest.raises(AdapterMismatchError, match="native LoRA-Dash file"):
        apply_adapters(pipe, [(two_adapters[0] / "dash_adapter.safetensors", 1.0)])
    assert not any(pipe.get_list_adapters().values())
