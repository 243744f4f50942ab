"""Test helpers: give LoRA-Dash layers a trained-looking state without running a training loop."""

from __future__ import annotations

import torch
from torch import nn

from dash_diffusion import dash_layers, select_directions


@torch.no_grad()
def perturb_adapter(model: nn.Module, seed: int = 0, select: bool = True, scale: float = 0.05) -> None:
    """Random LoRA factors, directions selected from them, then random ``dash_delta`` (as after training)."""
    generator = torch.Generator().manual_seed(seed)
    layers = dash_layers(model)
    for layer in layers.values():
        layer.lora_A.weight.copy_(torch.randn(layer.lora_A.weight.shape, generator=generator) * scale)
        layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=generator) * scale)
    if select:
        select_directions(model)
        for layer in layers.values():
            layer.dash_delta.copy_(torch.randn(layer.dash_delta.shape, generator=generator) * scale)


def unet_inputs(unet: nn.Module, seed: int = 0, batch: int = 2, size: int = 8) -> dict:
    """Fixed SDXL UNet inputs (latents, timestep, text states, pooled embeds and time ids) for a UNet config."""
    generator = torch.Generator().manual_seed(seed)
    config = unet.config
    pooled_dim = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    return {
        "sample": torch.randn(batch, config.in_channels, size, size, generator=generator),
        "timestep": torch.tensor([10, 500][:batch] + [999] * max(0, batch - 2)),
        "encoder_hidden_states": torch.randn(batch, 77, config.cross_attention_dim, generator=generator),
        "added_cond_kwargs": {
            "text_embeds": torch.randn(batch, pooled_dim, generator=generator),
            "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * batch),
        },
    }


@torch.no_grad()
def unet_output(unet: nn.Module, inputs: dict) -> torch.Tensor:
    return unet(**inputs, return_dict=False)[0]
