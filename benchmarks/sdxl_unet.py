"""A full-size SDXL UNet with random weights, built without downloading anything.

``SDXL_UNET_CONFIG`` is the UNet config of SDXL base 1.0 (``unet/config.json`` of
``stabilityai/stable-diffusion-xl-base-1.0``), written out by hand. Building its 2.57 B parameters in
float32 on a CPU takes about 10 GB and minutes, so :func:`build_meta_unet` constructs the model on the
``meta`` device (shapes only, no storage) and :func:`materialize_linears` gives real, random storage
to the few ``nn.Linear`` modules a benchmark needs. The rest of the model stays on ``meta`` and must
not be run.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable

import torch
from diffusers import UNet2DConditionModel
from torch import nn

#: SDXL base 1.0 UNet config (keys absent here take diffusers' defaults, which match the released file).
SDXL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 2048,
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "use_linear_projection": True,
    "upcast_attention": False,  # null in the released file; both mean "no upcast"
    # SDXL's micro-conditioning: pooled text embedding (1280) + 6 time ids x 256 = 2816 inputs.
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}

#: Parameter count of the released SDXL base UNet, for a sanity check.
SDXL_UNET_PARAMETERS = 2_567_463_684


def build_meta_unet(config: dict[str, Any] | None = None) -> UNet2DConditionModel:
    """The SDXL UNet on the ``meta`` device: every parameter has its real shape and no storage."""
    with torch.device("meta"):
        return UNet2DConditionModel(**(config or SDXL_UNET_CONFIG))


def linear_names(model: nn.Module, targets: Iterable[str]) -> list[str]:
    """Qualified names of the ``nn.Linear`` modules whose name equals or ends with ``"." + target``."""
    targets = tuple(targets)
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)
    ]


def shape_counts(model: nn.Module, names: Iterable[str]) -> Counter[tuple[int, int]]:
    """How many of the named linear layers have each weight shape ``(out, in)``."""
    return Counter(tuple(model.get_submodule(n).weight.shape) for n in names)


@torch.no_grad()
def materialize_linears(
    model: nn.Module,
    names: Iterable[str],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> None:
    """Give the named ``nn.Linear`` modules real storage on ``device`` with random weights.

    Weights are Gaussian with standard deviation ``1 / sqrt(in)`` (the scale of a trained projection,
    full rank like one), biases zero.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for name in names:
        module = model.get_submodule(name)
        module.to_empty(device=device)
        out_features, in_features = module.weight.shape
        weight = torch.randn(out_features, in_features, generator=generator) / math.sqrt(in_features)
        module.weight.copy_(weight.to(dtype))
        if module.bias is not None:
            module.bias.zero_()
        module.to(dtype=dtype)
