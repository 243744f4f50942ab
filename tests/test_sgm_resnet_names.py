"""kohya/SGM names of the UNet's resnet and sampler layers (LoCon targets): exact inverses on SDXL's, the
mini and the tiny layout, the SGM numbering itself, stock diffusers loading a kohya file of every such layer
into the right module, and check_lora_file on files with Conv2d factors."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from torch import nn

from dash_diffusion import AdapterMismatchError, DashError
from dash_diffusion.formats.lora_files import check_lora_file
from dash_diffusion.formats.sgm_names import (
    KOHYA_UNET_RESNET_TARGETS,
    KOHYA_UNET_TARGETS,
    SDXL_ATTENTION_UP_BLOCKS,
    attention_up_blocks_of,
    check_kohya_targets,
    kohya_module_key,
    sgm_to_unet,
    unet_to_sgm,
)
from dash_diffusion.models.mini.architecture import UNET_CONFIG as MINI_UNET_CONFIG
from dash_diffusion.models.tiny import UNET_CONFIG as TINY_UNET_CONFIG
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SDXL_UNET_CONFIG = {
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
}
#: Widths small enough for a fast CPU model; everything that decides the names is kept.
NARROW = {"block_out_channels": (32, 64, 64), "attention_head_dim": (2, 4, 4), "transformer_layers_per_block": (1, 1, 2)}
LAYOUTS = {
    "sdxl": {**TINY_UNET_CONFIG, **SDXL_UNET_CONFIG, **NARROW},
    "mini": {**MINI_UNET_CONFIG, **NARROW, "cross_attention_dim": TINY_UNET_CONFIG["cross_attention_dim"]},
    "tiny": dict(TINY_UNET_CONFIG),
}
for _layout in ("mini",):  # the tiny text encoders' widths, so the UNet fits the tiny pipeline
    LAYOUTS[_layout].update({k: TINY_UNET_CONFIG[k] for k in ("addition_time_embed_dim", "projection_class_embeddings_input_dim")})


def build_unet(layout: str) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(**LAYOUTS[layout]).eval()


@pytest.fixture(scope="module")
def unets() -> dict[str, UNet2DConditionModel]:
    return {layout: build_unet(layout) for layout in LAYOUTS}


def resnet_layers(unet: nn.Module) -> dict[str, nn.Module]:
    """The Linear and Conv2d modules of the resnets and samplers (what KOHYA_UNET_RESNET_TARGETS selects)."""
    return {n: m for n, m in unet.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and n.endswith(KOHYA_UNET_RESNET_TARGETS)}


def transformer_linears(unet: nn.Module) -> list[str]:
    return [n for n, m in unet.named_modules() if isinstance(m, nn.Linear) and ".attentions." in n]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_resnet_and_sampler_names_round_trip(unets, layout):
    unet = unets[layout]
    layers_per_block, attention = unet.config.layers_per_block, attention_up_blocks_of(unet.config)
    names = list(resnet_layers(unet)) + transformer_linears(unet)
    kinds = {name.rsplit(".", 1)[1] for name in resnet_layers(unet)}
    assert kinds == {"conv1", "conv2", "conv_shortcut", "time_emb_proj", "conv"}
    sgm = [unet_to_sgm(name, layers_per_block, attention_up_blocks=attention) for name in names]
    assert len(set(sgm)) == len(names), "two modules share an SGM name"
    for name, path in zip(names, sgm):
        assert sgm_to_unet(path, layers_per_block, attention_up_blocks=attention) == name
        check_kohya_targets("unet", (name,))


@pytest.mark.parametrize(
    ("layout", "name", "sgm"),
    [
        ("sdxl", "down_blocks.0.resnets.0.conv1", "input_blocks.1.0.in_layers.2"),
        ("sdxl", "down_blocks.0.resnets.1.conv2", "input_blocks.2.0.out_layers.3"),
        ("sdxl", "down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"),
        ("sdxl", "down_blocks.1.resnets.0.conv1", "input_blocks.4.0.in_layers.2"),
        ("sdxl", "down_blocks.1.resnets.0.conv_shortcut", "input_blocks.4.0.skip_connection"),
        ("sdxl", "down_blocks.1.downsamplers.0.conv", "input_blocks.6.0.op"),
        ("sdxl", "down_blocks.2.resnets.1.time_emb_proj", "input_blocks.8.0.emb_layers.1"),
        ("sdxl", "mid_block.resnets.0.time_emb_proj", "middle_block.0.emb_layers.1"),
        ("sdxl", "mid_block.resnets.1.conv2", "middle_block.2.out_layers.3"),
        ("sdxl", "up_blocks.0.resnets.0.conv_shortcut", "output_blocks.0.0.skip_connection"),
        ("sdxl", "up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"),
        ("sdxl", "up_blocks.1.resnets.2.conv1", "output_blocks.5.0.in_layers.2"),
        ("sdxl", "up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv"),
        ("sdxl", "up_blocks.2.resnets.2.conv_shortcut", "output_blocks.8.0.skip_connection"),
        ("mini", "down_blocks.0.downsamplers.0.conv", "input_blocks.2.0.op"),
        ("mini", "down_blocks.1.resnets.0.conv1", "input_blocks.3.0.in_layers.2"),
        ("mini", "down_blocks.1.attentions.0.proj_in", "input_blocks.3.1.proj_in"),
        ("mini", "up_blocks.0.upsamplers.0.conv", "output_blocks.1.2.conv"),
        ("mini", "up_blocks.2.resnets.1.conv2", "output_blocks.5.0.out_layers.3"),
        ("tiny", "down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"),
        ("tiny", "up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"),
        ("tiny", "up_blocks.1.resnets.2.conv_shortcut", "output_blocks.5.0.skip_connection"),
    ],
)
def test_sgm_layout_by_hand(unets, layout, name, sgm):
    unet = unets[layout]
    assert name in dict(unet.named_modules()), f"{layout} has no {name}"
    assert unet_to_sgm(name, unet.config.layers_per_block, attention_up_blocks=attention_up_blocks_of(unet.config)) == sgm


def test_attention_up_blocks_from_configs(unets):
    assert attention_up_blocks_of(SDXL_UNET_CONFIG) == SDXL_ATTENTION_UP_BLOCKS == frozenset({0, 1})
    assert attention_up_blocks_of(unets["sdxl"].config) == frozenset({0, 1})
    assert attention_up_blocks_of(unets["mini"].config) == frozenset({0, 1, 2})
    assert attention_up_blocks_of(unets["tiny"].config) == frozenset({0})
    with pytest.raises(DashError, match="no 'up_block_types': pass a UNet2DConditionModel config"):
        attention_up_blocks_of({"layers_per_block": 2})


def test_upsampler_of_a_block_without_attentions_follows_its_resnet():
    """SD 1.x layout (up block 0 has no attentions): the upsampler is output_blocks.2.1.conv, not .2.2."""
    plain_first = frozenset({1, 2, 3})
    assert unet_to_sgm("up_blocks.0.upsamplers.0.conv", 2, attention_up_blocks=plain_first) == "output_blocks.2.1.conv"
    assert sgm_to_unet("output_blocks.2.1.conv", 2, attention_up_blocks=plain_first) == "up_blocks.0.upsamplers.0.conv"
    assert sgm_to_unet("output_blocks.5.2.conv", 2, attention_up_blocks=plain_first) == "up_blocks.1.upsamplers.0.conv"
    assert sgm_to_unet("output_blocks.5.1.proj_in", 2, attention_up_blocks=plain_first) == "up_blocks.1.attentions.2.proj_in"
    with pytest.raises(DashError, match=r"up block 0 has attentions, so its upsampler is output_blocks\.2\.2\.conv"):
        sgm_to_unet("output_blocks.2.1.conv", 2)  # SDXL's default: up block 0 has attentions
    with pytest.raises(DashError, match=r"up block 0 has no attentions, so its upsampler is output_blocks\.2\.1\.conv"):
        sgm_to_unet("output_blocks.2.2.conv", 2, attention_up_blocks=plain_first)
    key = kohya_module_key("unet", "up_blocks.0.upsamplers.0.conv", 2, attention_up_blocks=plain_first)
    assert key == "lora_unet_output_blocks_2_1_conv"
    assert kohya_module_key("unet", "up_blocks.0.upsamplers.0.conv") == "lora_unet_output_blocks_2_2_conv"


@pytest.mark.parametrize(
    ("function", "name", "message"),
    [
        (unet_to_sgm, "conv_in", "lies outside the UNet's transformer models, resnets and samplers"),
        (unet_to_sgm, "add_embedding.linear_1", "lies outside"),
        (unet_to_sgm, "down_blocks.0.resnets.2.conv1", "has resnet 2 but a UNet with layers_per_block 2 has 2 per block"),
        (unet_to_sgm, "up_blocks.0.resnets.3.conv1", "has resnet 3 but a UNet with layers_per_block 2 has 3 per block"),
        (unet_to_sgm, "mid_block.resnets.2.conv1", "lies outside"),
        (unet_to_sgm, "down_blocks.0.resnets.0.norm1", "lies outside"),
        (sgm_to_unet, "input_blocks.0.0.in_layers.2", "is conv_in"),
        (sgm_to_unet, "input_blocks.2.0.op", "is no downsampler with layers_per_block 2"),
        (sgm_to_unet, "input_blocks.3.0.in_layers.2", "has resnet 2 but"),
        (sgm_to_unet, "output_blocks.1.2.conv", "is no upsampler"),
        (sgm_to_unet, "middle_block.3.in_layers.2", "not an SGM transformer-model, resnet or sampler path"),
        (sgm_to_unet, "output_blocks.0.0.in_layers.0", "not an SGM transformer-model, resnet or sampler path"),
    ],
)
def test_names_outside_the_layout_are_refused(function, name, message):
    with pytest.raises(DashError, match=message) as error:
        function(name, 2)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "targets",
    [
        KOHYA_UNET_RESNET_TARGETS,
        KOHYA_UNET_TARGETS + KOHYA_UNET_RESNET_TARGETS,
        ("resnets.0.conv1", "down_blocks.1.resnets.0.conv_shortcut", "mid_block.resnets.1.time_emb_proj", "up_blocks.2.resnets.2.conv2"),
        ("down_blocks.0.downsamplers.0.conv", "up_blocks.1.upsamplers.0.conv"),
        "to_q, conv1,time_emb_proj",
    ],
)
def test_check_kohya_targets_accepts_resnet_and_sampler_layers(targets):
    check_kohya_targets("unet", targets)


@pytest.mark.parametrize(
    "target",
    [
        "conv_in",
        "conv_out",
        "time_embedding.linear_1",
        "down_blocks.0.attentions.0.conv1",
        "down_blocks.0.resnets.0.to_q",
        "mid_block.resnets.2.conv1",
        "down_blocks.0.downsamplers.1.conv",
        "up_blocks.0.resnets.0.conv1.base_layer",
    ],
)
def test_check_kohya_targets_refuses_other_unet_layers(target):
    with pytest.raises(DashError, match=f"'{target}'.*kohya file cannot hold it: use targets among") as error:
        check_kohya_targets("unet", ("conv1", target))
    assert "\n" not in str(error.value)


def factors(module: nn.Module, rank: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random LoRA factors of a module: down (r, in) / up (out, r), or down (r, in, kh, kw) / up (out, r, 1, 1)."""
    if isinstance(module, nn.Conv2d):
        down = torch.randn(rank, module.in_channels, *module.kernel_size, generator=generator)
        return down, torch.randn(module.out_channels, rank, 1, 1, generator=generator)
    return torch.randn(rank, module.in_features, generator=generator), torch.randn(module.out_features, rank, generator=generator)


def kohya_file(unet: UNet2DConditionModel, rank: int = 3, alpha: float = 6.0) -> tuple[dict, dict]:
    """A kohya state dict with lora_down / lora_up / alpha for every resnet and sampler layer, and the factors by module."""
    generator = torch.Generator().manual_seed(1)
    tensors, written = {}, {}
    attention = attention_up_blocks_of(unet.config)
    for name, module in resnet_layers(unet).items():
        down, up = factors(module, rank, generator)
        stem = kohya_module_key("unet", name, unet.config.layers_per_block, attention_up_blocks=attention)
        tensors.update({f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": torch.tensor(alpha)})
        written[name] = (down, up)
    return tensors, written


def pipeline_with(unet: UNet2DConditionModel) -> StableDiffusionXLPipeline:
    return StableDiffusionXLPipeline(**{**build_tiny_sdxl_pipeline(seed=0).components, "unet": unet})


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_stock_diffusers_loads_every_resnet_and_sampler_layer_into_its_module(layout):
    pipe = pipeline_with(build_unet(layout))
    tensors, written = kohya_file(pipe.unet)
    pipe.load_lora_weights(dict(tensors))
    wrapped = {n: m for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and not n.endswith(".base_layer")}
    assert sorted(wrapped) == sorted(written)
    for name, (down, up) in written.items():
        layer = wrapped[name]
        assert torch.equal(layer.lora_A["default_0"].weight, down), name
        assert torch.equal(layer.lora_B["default_0"].weight, up), name
        assert layer.scaling["default_0"] == pytest.approx(2.0), name


def conv_pipeline_file(tmp_path, pipe, layout: str = "kohya", rank: int = 4, spoil: str | None = None):
    """A kohya or diffusers file of every resnet and sampler layer of ``pipe``; ``spoil`` names one whose down
    factor gets a 1 x 1 kernel instead of the module's."""
    generator = torch.Generator().manual_seed(2)
    tensors = {}
    for name, module in resnet_layers(pipe.unet).items():
        down, up = factors(module, rank, generator)
        if name == spoil:
            down = down[..., :1, :1].contiguous()
        if layout == "kohya":
            stem = kohya_module_key("unet", name, pipe.unet.config.layers_per_block, attention_up_blocks=attention_up_blocks_of(pipe.unet.config))
            tensors.update({f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": torch.tensor(float(rank))})
        else:
            tensors.update({f"unet.{name}.lora_A.weight": down, f"unet.{name}.lora_B.weight": up})
    path = tmp_path / f"{layout}.safetensors"
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize("layout", ["kohya", "diffusers"])
def test_check_lora_file_accepts_conv_factors(tmp_path, layout):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    info = check_lora_file(conv_pipeline_file(tmp_path, pipe, layout), pipe)
    assert (info.layout, info.num_modules, info.rank) == (layout, len(resnet_layers(pipe.unet)), 4)


@pytest.mark.parametrize(
    ("layout", "label"),
    [("kohya", "lora_unet_input_blocks_1_0_in_layers_2"), ("diffusers", "unet.down_blocks.0.resnets.0.conv1")],
)
def test_check_lora_file_refuses_a_wrong_kernel_in_one_line(tmp_path, layout, label):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    path = conv_pipeline_file(tmp_path, pipe, layout, spoil="down_blocks.0.resnets.0.conv1")
    expected = (
        f"module '{label}' of '{layout}.safetensors' does not fit this base model: down (4, 32, 1, 1), up (32, 4, 1, 1) "
        "for a 3x3 Conv2d of 32 -> 32 (needs down (r, 32, 3, 3), up (32, r, 1, 1)); use an adapter trained on this base model"
    )
    with pytest.raises(AdapterMismatchError) as error:
        check_lora_file(path, pipe)
    assert str(error.value) == expected


def test_check_lora_file_refuses_linear_factors_for_a_conv(tmp_path):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    tensors = {"unet.up_blocks.0.upsamplers.0.conv.lora_A.weight": torch.zeros(2, 64), "unet.up_blocks.0.upsamplers.0.conv.lora_B.weight": torch.zeros(64, 2)}
    path = tmp_path / "flat.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(AdapterMismatchError, match=r"down \(2, 64\), up \(64, 2\) for a 3x3 Conv2d of 64 -> 64 \(needs down \(r, 64, 3, 3\)"):
        check_lora_file(path, pipe)
