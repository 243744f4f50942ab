"""LoRA-Dash on the UNet's convolutions (LoCon: ResnetBlock2D, Downsample2D, Upsample2D) goes through the three
files and back: stock diffusers loads the diffusers and kohya files (4-D conv factors) and reproduces the
adapted UNet, the native file restores it exactly, the checker accepts both LoRA files."""

from __future__ import annotations

import pytest
import torch
from dash_helpers import perturb_adapter, unet_inputs, unet_output
from safetensors.torch import load_file

from dash_diffusion import (
    DIFFUSERS_WEIGHT_NAME,
    KOHYA_WEIGHT_NAME,
    DashConfig,
    DashConv2d,
    dash_layers,
    inject_dash,
    load_dash_adapter,
    save_adapter,
)
from dash_diffusion.formats.lora_files import check_lora_file
from dash_diffusion.formats.sgm_names import (
    KOHYA_UNET_RESNET_TARGETS,
    KOHYA_UNET_TARGETS,
)
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SDXL with LoRA-Dash on every transformer Linear and every resnet/sampler layer of its UNet, exported."""
    pipe = build_tiny_sdxl_pipeline(seed=0)
    targets = KOHYA_UNET_TARGETS + KOHYA_UNET_RESNET_TARGETS
    inject_dash(pipe.unet, DashConfig(rank=3, alpha=6, num_directions=2, target_modules=targets))
    perturb_adapter(pipe.unet, seed=5)
    out = tmp_path_factory.mktemp("conv_targets")
    paths = save_adapter(out, pipe.unet)
    inputs = unet_inputs(pipe.unet)
    base = unet_output(build_tiny_sdxl_pipeline(seed=0).unet, inputs)
    return {"pipe": pipe, "dir": out, "paths": paths, "inputs": inputs, "expected": unet_output(pipe.unet, inputs), "base": base}


def assert_reproduces(unet, trained, tolerance: float = TOLERANCE) -> None:
    assert (trained["expected"] - trained["base"]).abs().max() > 1e-3, "the adapter should change the output"
    assert (unet_output(unet, trained["inputs"]) - trained["expected"]).abs().max().item() <= tolerance


def test_every_resnet_and_sampler_convolution_is_adapted(trained):
    convs = {n for n, m in dash_layers(trained["pipe"].unet).items() if isinstance(m, DashConv2d)}
    for kind in ("resnets.0.conv1", "resnets.0.conv2", "downsamplers.0.conv", "upsamplers.0.conv"):
        assert any(n.endswith(kind) for n in convs), kind
    assert not any(n in convs for n in ("conv_in", "conv_out"))


def test_files_hold_convolution_kernels(trained):
    tensors = load_file(trained["paths"]["diffusers"])
    down = tensors["unet.down_blocks.0.resnets.0.conv1.lora_A.weight"]
    up = tensors["unet.down_blocks.0.resnets.0.conv1.lora_B.weight"]
    conv = trained["pipe"].unet.down_blocks[0].resnets[0].conv1.base_layer
    assert tuple(down.shape) == (5, conv.in_channels, 3, 3) and tuple(up.shape) == (conv.out_channels, 5, 1, 1)
    kohya = load_file(trained["paths"]["kohya"])
    assert any(k.endswith("in_layers_2.lora_down.weight") and v.dim() == 4 for k, v in kohya.items())


@pytest.mark.parametrize("weight_name", [DIFFUSERS_WEIGHT_NAME, KOHYA_WEIGHT_NAME])
def test_stock_diffusers_loads_the_convolutions_and_reproduces_the_unet(trained, weight_name):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    pipe.load_lora_weights(str(trained["dir"]), weight_name=weight_name)
    adapted = {n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A")}
    assert adapted == set(dash_layers(trained["pipe"].unet))
    assert_reproduces(pipe.unet, trained)


def test_native_file_restores_convolutions_exactly(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    load_dash_adapter(pipe.unet, trained["paths"]["native"])
    assert_reproduces(pipe.unet, trained, tolerance=1e-6)


def test_checker_accepts_conv_files(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    for layout in ("diffusers", "kohya"):
        info = check_lora_file(trained["paths"][layout], pipe)
        assert (info.layout, info.num_modules, info.rank) == (layout, len(dash_layers(trained["pipe"].unet)), 5)


def test_merged_weights_equal_the_adapted_unet(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    load_dash_adapter(pipe.unet, trained["paths"]["native"])
    with torch.no_grad():
        for layer in dash_layers(pipe.unet).values():
            layer.merge()
    assert_reproduces(pipe.unet, trained, tolerance=1e-4)
