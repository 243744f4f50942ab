"""Every nn.Linear that sd-scripts' LoRA adapts in SDXL (the transformer models' Linears, CLIP attention and
MLP) goes through the three files and back through stock diffusers, and check_kohya_targets refuses the rest."""

from __future__ import annotations

import pytest
import torch
from dash_helpers import perturb_adapter, unet_inputs, unet_output
from safetensors.torch import load_file

from dash_diffusion import (
    DIFFUSERS_WEIGHT_NAME,
    KOHYA_WEIGHT_NAME,
    NATIVE_WEIGHT_NAME,
    DashConfig,
    DashError,
    dash_layers,
    inject_dash,
    load_dash_adapter,
    save_adapter,
)
from dash_diffusion.formats.lora_files import check_lora_file
from dash_diffusion.formats.sgm_names import (
    KOHYA_TEXT_ENCODER_TARGETS,
    KOHYA_UNET_TARGETS,
    check_kohya_targets,
    kohya_module_key,
    sgm_to_unet,
    unet_to_sgm,
)
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

TOLERANCE = 1e-5
COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
NEW_UNET_KINDS = ("proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")


def outputs(pipe, inputs: dict, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """UNet prediction and the penultimate hidden states of both text encoders (what SDXL conditions on)."""
    with torch.no_grad():
        return {
            "unet": unet_output(pipe.unet, inputs),
            "text_encoder": pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2],
            "text_encoder_2": pipe.text_encoder_2(ids, output_hidden_states=True).hidden_states[-2],
        }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SDXL with LoRA-Dash on every kohya-nameable Linear of the UNet and both text encoders, exported."""
    pipe = build_tiny_sdxl_pipeline(seed=0)
    inject_dash(pipe.unet, DashConfig(rank=4, alpha=8, num_directions=3, target_modules=KOHYA_UNET_TARGETS))
    te_config = DashConfig(rank=2, num_directions=2, target_modules=KOHYA_TEXT_ENCODER_TARGETS)
    inject_dash(pipe.text_encoder, te_config)
    inject_dash(pipe.text_encoder_2, te_config)
    for seed, prefix in enumerate(COMPONENTS):
        perturb_adapter(getattr(pipe, prefix), seed=seed)
    out = tmp_path_factory.mktemp("all_targets")
    paths = save_adapter(out, pipe.unet, pipe.text_encoder, pipe.text_encoder_2)
    inputs = unet_inputs(pipe.unet)
    ids = pipe.tokenizer(["a photo of sks robot"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    base = outputs(build_tiny_sdxl_pipeline(seed=0), inputs, ids)
    return {"pipe": pipe, "dir": out, "paths": paths, "inputs": inputs, "ids": ids, "expected": outputs(pipe, inputs, ids), "base": base}


def assert_reproduces(pipe, trained, tolerance: float = TOLERANCE) -> None:
    got = outputs(pipe, trained["inputs"], trained["ids"])
    for key, expected in trained["expected"].items():
        assert (expected - trained["base"][key]).abs().max() > 1e-3, f"{key}: the adapter should change the output"
        assert (got[key] - expected).abs().max().item() <= tolerance, key


def test_tiny_sdxl_adapts_linear_projections_and_feed_forwards(trained):
    names = dash_layers(trained["pipe"].unet)
    for kind in NEW_UNET_KINDS:
        assert any(n.endswith("." + kind) for n in names), kind
    assert "down_blocks.1.attentions.0.proj_in" in names and "mid_block.attentions.0.transformer_blocks.1.ff.net.0.proj" in names
    assert any(n.endswith("mlp.fc1") for n in dash_layers(trained["pipe"].text_encoder))


def test_kohya_file_names_new_kinds_with_sgm_paths(trained):
    stems = {k.rsplit(".", 2)[0] for k in load_file(trained["paths"]["kohya"]) if k.endswith(".lora_down.weight")}
    for stem in (
        "lora_unet_input_blocks_4_1_proj_in",
        "lora_unet_input_blocks_5_1_proj_out",
        "lora_unet_input_blocks_4_1_transformer_blocks_0_ff_net_0_proj",
        "lora_unet_input_blocks_4_1_transformer_blocks_1_ff_net_2",
        "lora_unet_middle_block_1_proj_in",
        "lora_unet_middle_block_1_transformer_blocks_0_ff_net_2",
        "lora_unet_output_blocks_0_1_proj_out",
        "lora_unet_output_blocks_2_1_transformer_blocks_1_ff_net_0_proj",
        "lora_te1_text_model_encoder_layers_0_mlp_fc1",
        "lora_te2_text_model_encoder_layers_2_mlp_fc2",
    ):
        assert stem in stems, stem
    num_modules = sum(len(dash_layers(getattr(trained["pipe"], c))) for c in COMPONENTS)
    assert len(stems) == num_modules
    assert not any("down_blocks" in s or "up_blocks" in s or "mid_block" in s for s in stems), "mixed naming drops SGM keys"


def test_sgm_names_round_trip_for_new_kinds():
    for name in (
        "down_blocks.2.attentions.1.proj_in",
        "down_blocks.1.attentions.0.transformer_blocks.9.ff.net.0.proj",
        "mid_block.attentions.0.transformer_blocks.3.ff.net.2",
        "up_blocks.0.attentions.2.proj_out",
    ):
        assert sgm_to_unet(unet_to_sgm(name, 2), 2) == name
    assert kohya_module_key("unet", "down_blocks.2.attentions.1.proj_in") == "lora_unet_input_blocks_8_1_proj_in"
    assert kohya_module_key("unet", "up_blocks.1.attentions.2.transformer_blocks.0.ff.net.2") == "lora_unet_output_blocks_5_1_transformer_blocks_0_ff_net_2"


@pytest.mark.parametrize("weight_name", [DIFFUSERS_WEIGHT_NAME, KOHYA_WEIGHT_NAME])
def test_stock_diffusers_loads_every_module_and_reproduces_the_model(trained, weight_name):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    pipe.load_lora_weights(str(trained["dir"]), weight_name=weight_name)
    wrapped = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and n.endswith(NEW_UNET_KINDS)]
    assert len(wrapped) == sum(n.endswith(NEW_UNET_KINDS) for n in dash_layers(trained["pipe"].unet))
    assert_reproduces(pipe, trained)


def test_native_file_restores_new_kinds_exactly(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    for prefix in COMPONENTS:
        load_dash_adapter(getattr(pipe, prefix), trained["paths"]["native"], prefix=prefix)
    assert_reproduces(pipe, trained, tolerance=1e-6)


def test_checker_accepts_files_with_new_kinds(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    num_modules = sum(len(dash_layers(getattr(trained["pipe"], c))) for c in COMPONENTS)
    for layout in ("diffusers", "kohya"):
        info = check_lora_file(trained["paths"][layout], pipe)
        assert (info.layout, info.num_modules, info.rank) == (layout, num_modules, 7)


def test_target_outside_transformers_still_writes_native_and_diffusers(tmp_path):
    # bug: with --target_modules ...,time_emb_proj the kohya export raised first and the folder held no native file.
    # time_emb_proj now has a kohya name (emb_layers.1); add_embedding.linear_1 is a Linear the kohya file still cannot name.
    pipe = build_tiny_sdxl_pipeline(seed=0)
    inject_dash(pipe.unet, DashConfig(rank=2, num_directions=2, target_modules=("to_q", "add_embedding.linear_1")))
    perturb_adapter(pipe.unet, seed=3)
    inputs = unet_inputs(pipe.unet)
    expected = unet_output(pipe.unet, inputs)
    with pytest.raises(DashError, match=r"kohya file failed: module 'add_embedding\.linear_1' lies outside") as error:
        save_adapter(tmp_path, pipe.unet)
    assert "\n" not in str(error.value) and NATIVE_WEIGHT_NAME in str(error.value) and DIFFUSERS_WEIGHT_NAME in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DIFFUSERS_WEIGHT_NAME, NATIVE_WEIGHT_NAME])
    fresh = build_tiny_sdxl_pipeline(seed=0)
    load_dash_adapter(fresh.unet, tmp_path / NATIVE_WEIGHT_NAME)
    assert (unet_output(fresh.unet, inputs) - expected).abs().max().item() <= 1e-6


@pytest.mark.parametrize(
    "targets",
    [
        KOHYA_UNET_TARGETS,
        ("attn1.to_q", "attn2.to_out.0", "transformer_blocks.0.ff.net.2", "attentions.0.proj_in"),
        ("down_blocks.1.attentions.0.transformer_blocks.1.ff.net.0.proj", "mid_block.attentions.0.proj_out", "up_blocks.0.attentions.2.proj_in"),
        "to_q, to_k,ff.net.2",
    ],
)
def test_check_kohya_targets_accepts_transformer_linears(targets):
    check_kohya_targets("unet", targets)


def test_check_kohya_targets_accepts_clip_attention_and_mlp():
    for prefix in ("text_encoder", "text_encoder_2"):
        check_kohya_targets(prefix, KOHYA_TEXT_ENCODER_TARGETS)
        check_kohya_targets(prefix, ("self_attn.q_proj", "mlp.fc2", "text_model.encoder.layers.0.mlp.fc1"))


@pytest.mark.parametrize(
    ("prefix", "target"),
    [
        ("unet", "time_embedding.linear_1"),
        ("unet", "conv_in"),
        ("unet", "add_embedding.linear_1"),
        ("unet", "proj"),
        ("unet", "to_out"),
        ("unet", "down_blocks.0.resnets.0.to_q"),
        ("unet", "down_blocks.1.resnets.0.ff.net.2"),
        ("text_encoder", "to_q"),
        ("text_encoder_2", "text_projection"),
    ],
)
def test_check_kohya_targets_refuses_what_kohya_cannot_name(prefix, target):
    with pytest.raises(DashError, match=f"'{target}'.*kohya file cannot hold it: use targets among") as error:
        check_kohya_targets(prefix, ("to_q", target) if prefix == "unet" else ("q_proj", target))
    assert "\n" not in str(error.value)


def test_check_kohya_targets_refuses_unknown_component():
    with pytest.raises(DashError, match="unknown component 'vae': use one of unet, text_encoder, text_encoder_2"):
        check_kohya_targets("vae", ("to_q",))


def test_check_kohya_targets_agrees_with_the_exporter():
    """Every module the accepted UNet targets wrap in the tiny SDXL has a kohya name."""
    pipe = build_tiny_sdxl_pipeline(seed=0)
    check_kohya_targets("unet", KOHYA_UNET_TARGETS)
    linears = [n for n, m in pipe.unet.named_modules() if isinstance(m, torch.nn.Linear)]
    adapted = inject_dash(pipe.unet, DashConfig(target_modules=KOHYA_UNET_TARGETS))
    transformer_linears = [n for n in linears if ".attentions." in n]
    assert sorted(adapted) == sorted(transformer_linears), "the kohya targets cover every transformer Linear"
    for name in adapted:
        kohya_module_key("unet", name)
