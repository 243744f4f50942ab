"""Grow a mini-sdxl UNet of an older layout into :data:`~.architecture.UNET_CONFIG` without changing it.

The first mini UNets had no transformer blocks at the 16 x 16 level (``DownBlock2D`` / ``UpBlock2D``
there, as SDXL has at its finest level). Those blocks' ResNets, down- and upsamplers keep their
parameter names in the cross-attention blocks, so every old weight loads as it is and only the new
transformers (``down_blocks.0.attentions.*``, ``up_blocks.2.attentions.*``) are new. A transformer
model adds its output to its input::

    h  ->  h + proj_out(blocks(proj_in(norm(h))))

so with ``proj_out`` (weight and bias) set to zero each new one is the identity and the grown UNet
computes exactly what the old one did; training then opens the new attention up from there (the
zero-initialised output layer of ControlNet's zero convolutions and of adapters such as LoRA's ``B``).
"""

from __future__ import annotations

import torch

from .architecture import UNET_CONFIG

LAYOUT_KEYS = ("down_block_types", "up_block_types")
"""The config entries a grown UNet may change; everything else must already match :data:`UNET_CONFIG`."""


def needs_growing(config) -> bool:
    """Whether a UNet with ``config`` lacks some of :data:`UNET_CONFIG`'s transformer blocks."""
    return any(tuple(config[key]) != tuple(UNET_CONFIG[key]) for key in LAYOUT_KEYS)


def grow_unet(unet, seed: int = 0):
    """``unet`` itself when it already has :data:`UNET_CONFIG`'s layout, else a new float32 UNet of that
    layout holding all of ``unet``'s weights, with new transformer blocks drawn from ``seed`` and their
    ``proj_out`` zeroed, so that both give bit-identical outputs. ``ValueError`` when the two differ
    in anything but the block types, or when an old block cannot become the new one."""
    from diffusers import UNet2DConditionModel

    if not needs_growing(unet.config):
        return unet
    mismatched = [key for key, value in UNET_CONFIG.items() if key not in LAYOUT_KEYS and _normalised(unet.config[key]) != _normalised(value)]
    if mismatched:
        raise ValueError(f"cannot grow this UNet into mini-sdxl's layout: its {', '.join(mismatched)} differ; start from a mini-sdxl folder")
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        grown = UNet2DConditionModel(**UNET_CONFIG)
    missing, unexpected = grown.load_state_dict(unet.state_dict(), strict=False)
    new_blocks = {_transformer_path(name) for name in missing}
    if unexpected or None in new_blocks:
        raise ValueError(f"cannot grow this UNet into mini-sdxl's layout: old weights {unexpected[:3]} or new ones {missing[:3]} do not fit")
    with torch.no_grad():
        for path in new_blocks:
            projection = grown.get_submodule(f"{path}.proj_out")
            projection.weight.zero_()
            projection.bias.zero_()
    return grown


def _transformer_path(parameter: str) -> str | None:
    """``down_blocks.0.attentions.0`` for any parameter inside that transformer model, else ``None``."""
    parts = parameter.split(".")
    for index, part in enumerate(parts[:-1]):
        if part == "attentions":
            return ".".join(parts[: index + 2])
    return None


def _normalised(value):
    """Lists from a saved ``config.json`` compare equal to the tuples of :data:`UNET_CONFIG`."""
    return tuple(value) if isinstance(value, (list, tuple)) else value
