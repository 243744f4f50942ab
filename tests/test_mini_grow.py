"""Growing an older mini-sdxl UNet (no transformer blocks at the 16 x 16 level) into the current layout."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from dash_diffusion.models.mini.architecture import UNET_CONFIG
from dash_diffusion.models.mini.grow import grow_unet, needs_growing

OLD_LAYOUT = {
    **UNET_CONFIG,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
}
"""The layout of the mini UNets shipped before the 16 x 16 transformer blocks."""


def old_unet(seed: int = 1):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**OLD_LAYOUT)


def denoise(unet, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    size = UNET_CONFIG["sample_size"]
    latents = torch.randn(2, UNET_CONFIG["in_channels"], size, size, generator=generator)
    context = torch.randn(2, 7, UNET_CONFIG["cross_attention_dim"], generator=generator)
    pooled = torch.randn(2, UNET_CONFIG["projection_class_embeddings_input_dim"] - 6 * UNET_CONFIG["addition_time_embed_dim"], generator=generator)
    time_ids = torch.tensor([[128.0, 128.0, 0.0, 0.0, 128.0, 128.0]]).expand(2, -1)
    with torch.no_grad():
        return unet(latents, torch.tensor([20, 800]), encoder_hidden_states=context, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample


def test_a_grown_unet_gives_bit_identical_outputs_and_only_gains_the_16px_transformers():
    torch.set_num_threads(1)
    old = old_unet()
    grown = grow_unet(old)
    assert needs_growing(old.config) and not needs_growing(grown.config)
    assert torch.equal(denoise(grown), denoise(old))
    old_names = set(old.state_dict())
    new_names = set(grown.state_dict()) - old_names
    assert old_names < set(grown.state_dict())
    assert new_names and all(name.startswith(("down_blocks.0.attentions.", "up_blocks.2.attentions.")) for name in new_names)
    # the new blocks are not inert: once their zeroed output layer moves, the output does too
    with torch.no_grad():
        grown.down_blocks[0].attentions[0].proj_out.weight.add_(0.01)
    assert not torch.equal(denoise(grown), denoise(old))


def test_a_unet_of_the_current_layout_is_kept_and_another_size_is_refused():
    from diffusers import UNet2DConditionModel

    current = UNet2DConditionModel(**UNET_CONFIG)
    assert grow_unet(current) is current
    other = UNet2DConditionModel(**{**OLD_LAYOUT, "block_out_channels": (32, 64, 96)})
    with pytest.raises(ValueError, match="block_out_channels"):
        grow_unet(other)


def test_init_from_a_folder_of_the_old_layout_exports_the_grown_unet(tmp_path):
    from dash_diffusion.models.mini.architecture import build_mini_sdxl_pipeline
    from dash_diffusion.models.mini.pretrain import pretrain
    from dash_diffusion.models.world import vocabulary
    from tests.pretrain_helpers import small

    torch.set_num_threads(1)
    pipeline = build_mini_sdxl_pipeline(vocabulary())
    pipeline.unet = old_unet()
    pipeline.save_pretrained(tmp_path / "old")
    out = pretrain(small(tmp_path / "continued", init_from=str(tmp_path / "old"), unet_steps=0))
    from diffusers import UNet2DConditionModel

    exported = UNet2DConditionModel.from_pretrained(out / "unet")
    assert not needs_growing(exported.config)
    weights, before = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors")), pipeline.unet.state_dict()
    assert all(torch.equal(weights[name], tensor.to(weights[name].dtype)) for name, tensor in before.items())
    assert not weights["up_blocks.2.attentions.1.proj_out.weight"].any()
