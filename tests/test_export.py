"""The three adapter files reproduce the in-memory model through stock loaders (within 1e-5)."""

from __future__ import annotations

import json

import pytest
import torch
from dash_helpers import perturb_adapter, unet_inputs, unet_output
from safetensors.torch import load_file, save_file

from dash_diffusion import (
    DIFFUSERS_WEIGHT_NAME,
    KOHYA_WEIGHT_NAME,
    NATIVE_WEIGHT_NAME,
    TEXT_ENCODER_TARGET_MODULES,
    AdapterMismatchError,
    DashConfig,
    DashError,
    dash_layers,
    inject_dash,
    load_dash_adapter,
    read_native_adapter,
    save_adapter,
)
from dash_diffusion.formats.lora_files import check_lora_file
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SDXL with LoRA-Dash on the UNet and both text encoders, directions selected, exported."""
    pipe = build_tiny_sdxl_pipeline(seed=0)
    inject_dash(pipe.unet, DashConfig(rank=4, alpha=8, num_directions=6, warmup_steps=3))
    te_config = DashConfig(rank=2, num_directions=3, target_modules=TEXT_ENCODER_TARGET_MODULES)
    inject_dash(pipe.text_encoder, te_config)
    inject_dash(pipe.text_encoder_2, te_config)
    for seed, model in enumerate((pipe.unet, pipe.text_encoder, pipe.text_encoder_2)):
        perturb_adapter(model, seed=seed)
    out = tmp_path_factory.mktemp("adapter")
    paths = save_adapter(out, pipe.unet, pipe.text_encoder, pipe.text_encoder_2, metadata={"base_model": "builtin:tiny-sdxl", "selected_at_step": 3})
    inputs = unet_inputs(pipe.unet)
    ids = pipe.tokenizer(["a photo of sks robot"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = {
            "unet": unet_output(pipe.unet, inputs),
            "text_encoder": pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2],
            "text_encoder_2": pipe.text_encoder_2(ids, output_hidden_states=True).hidden_states[-2],
        }
    return {"pipe": pipe, "dir": out, "paths": paths, "inputs": inputs, "ids": ids, "expected": expected}


def outputs_of(pipe, trained) -> dict[str, torch.Tensor]:
    ids = trained["ids"]
    with torch.no_grad():
        return {
            "unet": unet_output(pipe.unet, trained["inputs"]),
            "text_encoder": pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2],
            "text_encoder_2": pipe.text_encoder_2(ids, output_hidden_states=True).hidden_states[-2],
        }


def assert_matches(pipe, trained):
    got = outputs_of(pipe, trained)
    base = outputs_of(build_tiny_sdxl_pipeline(seed=0), trained)
    for key, expected in trained["expected"].items():
        assert (expected - base[key]).abs().max() > 1e-3, f"{key}: the adapter should change the output"
        assert (got[key] - expected).abs().max().item() <= TOLERANCE, key


def test_three_files_written_without_temporaries(trained):
    names = sorted(p.name for p in trained["dir"].iterdir())
    assert names == sorted([DIFFUSERS_WEIGHT_NAME, KOHYA_WEIGHT_NAME, NATIVE_WEIGHT_NAME])


def test_diffusers_file_loads_in_stock_pipeline(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    pipe.load_lora_weights(str(trained["dir"]))
    assert_matches(pipe, trained)


def test_kohya_file_loads_in_stock_pipeline(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    pipe.load_lora_weights(str(trained["dir"]), weight_name=KOHYA_WEIGHT_NAME)
    assert_matches(pipe, trained)


def test_native_file_restores_layers_exactly(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    for prefix in ("unet", "text_encoder", "text_encoder_2"):
        load_dash_adapter(getattr(pipe, prefix), trained["paths"]["native"], prefix=prefix)
    got = outputs_of(pipe, trained)
    for key, expected in trained["expected"].items():
        assert (got[key] - expected).abs().max().item() <= 1e-6, key


def test_diffusers_file_layout_rank_and_metadata(trained):
    tensors = load_file(trained["paths"]["diffusers"])
    assert all(k.split(".", 1)[0] in ("unet", "text_encoder", "text_encoder_2") for k in tensors)
    ranks = {v.shape[0] for k, v in tensors.items() if k.endswith("lora_A.weight")}
    assert ranks == {10}  # r + s = 4 + 6 for the UNet; the text encoders' 2 + 3 are zero-padded to 10
    from safetensors import safe_open

    with safe_open(str(trained["paths"]["diffusers"]), "pt") as handle:
        header = handle.metadata()
    peft = json.loads(header["lora_adapter_metadata"])
    assert peft["unet.r"] == peft["unet.lora_alpha"] == 10
    dash = json.loads(header["lora_dash"])
    assert dash["rank"] == 4 and dash["num_directions"] == 6 and dash["base_model"] == "builtin:tiny-sdxl"


def test_kohya_keys_use_sgm_names_and_one_alpha(trained):
    tensors = load_file(trained["paths"]["kohya"])
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in tensors
    assert "lora_unet_middle_block_1_transformer_blocks_0_attn2_to_out_0.lora_up.weight" in tensors
    assert "lora_unet_output_blocks_0_1_transformer_blocks_1_attn1_to_k.alpha" in tensors
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in tensors
    diffusers_keys = load_file(trained["paths"]["diffusers"])
    assert "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight" in diffusers_keys
    assert "lora_te2_text_model_encoder_layers_0_self_attn_out_proj.lora_up.weight" in tensors
    assert {v.item() for k, v in tensors.items() if k.endswith(".alpha")} == {10.0}
    assert not any("down_blocks" in k or "up_blocks" in k for k in tensors), "mixed naming drops SGM keys"


def test_native_file_content(trained):
    adapter = read_native_adapter(trained["paths"]["native"])
    meta = adapter.metadata
    assert meta["format"] == "lora-dash" and meta["format_version"] == 1
    assert (meta["rank"], meta["alpha"], meta["num_directions"], meta["warmup_steps"]) == (4, 8.0, 6, 3)
    assert meta["selected_at_step"] == 3 and meta["target_modules"] == ["to_q", "to_k", "to_v", "to_out.0"]
    module = adapter.modules["unet"]["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"]
    assert module["dash_U"].shape == (64, 6) and module["dash_V"].shape == (64, 6)
    assert module["dash_indices"].dtype == torch.int64 and module["dash_change_rate"].shape == (64,)
    assert set(adapter.modules) == {"unet", "text_encoder", "text_encoder_2"}


def test_checker_accepts_our_files(trained):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    assert check_lora_file(trained["paths"]["diffusers"], pipe).rank == 10
    info = check_lora_file(trained["paths"]["kohya"], pipe)
    num_modules = sum(len(dash_layers(getattr(trained["pipe"], c))) for c in ("unet", "text_encoder", "text_encoder_2"))
    assert info.layout == "kohya" and info.num_modules == num_modules
    assert info.metadata["num_directions"] == 6


def test_file_without_unet_prefix_is_refused(trained, tmp_path):
    tensors = load_file(trained["paths"]["diffusers"])
    stripped = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("unet.")}
    bad = tmp_path / "no_prefix.safetensors"
    save_file(stripped, str(bad))
    with pytest.raises(AdapterMismatchError, match="without a 'unet.'"):
        check_lora_file(bad, build_tiny_sdxl_pipeline(seed=0))


def test_adapter_for_another_model_gives_one_clear_error(trained):
    from diffusers import UNet2DConditionModel

    other = UNet2DConditionModel.from_config({**trained["pipe"].unet.config, "cross_attention_dim": 32})
    with pytest.raises(AdapterMismatchError, match=r"module 'unet\..*attn2\.to_k' does not fit") as error:
        load_dash_adapter(other, trained["paths"]["native"])
    assert "\n" not in str(error.value)
    pipe = build_tiny_sdxl_pipeline(seed=0)
    pipe.unet = other
    with pytest.raises(AdapterMismatchError, match="does not fit this base model"):
        check_lora_file(trained["paths"]["diffusers"], pipe)


def test_missing_prefix_and_non_native_file_errors(trained, tmp_path):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    with pytest.raises(DashError, match="not a LoRA-Dash native file"):
        load_dash_adapter(pipe.unet, trained["paths"]["diffusers"])
    unet_only = tmp_path / "unet_only"
    inject_dash(pipe.unet, DashConfig(rank=2, num_directions=2))
    paths = save_adapter(unet_only, pipe.unet)
    with pytest.raises(AdapterMismatchError, match="holds no 'text_encoder.' modules"):
        load_dash_adapter(pipe.text_encoder, paths["native"], prefix="text_encoder")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(paths["native"].read_bytes()[:100])
    with pytest.raises(DashError, match="cannot read"):
        load_dash_adapter(build_tiny_sdxl_pipeline(seed=0).unet, truncated)


def test_save_before_selection_exports_plain_lora(tmp_path):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    inject_dash(pipe.unet, DashConfig(rank=3, num_directions=2))
    perturb_adapter(pipe.unet, seed=5, select=False)
    inputs = unet_inputs(pipe.unet)
    expected = unet_output(pipe.unet, inputs)
    save_adapter(tmp_path, pipe.unet, metadata={"selected_at_step": None})
    fresh = build_tiny_sdxl_pipeline(seed=0)
    fresh.load_lora_weights(str(tmp_path))
    assert (unet_output(fresh.unet, inputs) - expected).abs().max().item() <= TOLERANCE
    native = read_native_adapter(tmp_path / NATIVE_WEIGHT_NAME)
    indices = next(iter(native.modules["unet"].values()))["dash_indices"]
    assert indices.tolist() == [-1, -1]
