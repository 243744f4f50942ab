"""The trainer with LoRA-Dash on the UNet's convolutions (LoCon targets): it switches phase on conv layers,
exports files that stock diffusers loads, and a run killed after the switch resumes to the same files."""

from __future__ import annotations

from train_helpers import assert_same_files, killed_then_resumed, tiny_config

import dash_diffusion.training.train as train_module
from dash_diffusion import (
    DashConv2d,
    dash_layers,
    load_dash_adapter,
    read_native_adapter,
)
from dash_diffusion.formats.lora_files import check_lora_file
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

TARGETS = "to_q,to_k,to_v,to_out.0,conv1,conv2,conv_shortcut,time_emb_proj,downsamplers.0.conv,upsamplers.0.conv"
OPTIONS = {"target_modules": TARGETS, "max_train_steps": 4, "dash_warmup_steps": 2, "checkpointing_steps": 2}


def test_conv_targets_train_switch_and_export(tmp_path):
    out = train_module.train(tiny_config(tmp_path, **OPTIONS))
    native = read_native_adapter(out / "dash_adapter.safetensors")
    conv = native.modules["unet"]["down_blocks.0.resnets.0.conv1"]
    assert conv["lora_A.weight"].dim() == 4 and (conv["dash_indices"] >= 0).all(), "conv directions selected at the switch"
    assert conv["dash_delta"].abs().sum() > 0, "their scales trained after it"
    pipe = build_tiny_sdxl_pipeline()
    for layout, weight_name in (("diffusers", "pytorch_lora_weights.safetensors"), ("kohya", "lora_dash_kohya.safetensors")):
        assert check_lora_file(out / weight_name, pipe).layout == layout
    pipe.load_lora_weights(str(out), weight_name="lora_dash_kohya.safetensors")
    assert pipe.unet.down_blocks[0].resnets[0].conv1.lora_A["default_0"].weight.dim() == 4
    restored = build_tiny_sdxl_pipeline().unet
    load_dash_adapter(restored, out / "dash_adapter.safetensors")
    assert any(isinstance(layer, DashConv2d) for layer in dash_layers(restored).values())


def test_conv_run_killed_after_the_switch_resumes_to_the_same_files(tmp_path, monkeypatch):
    reference = train_module.train(tiny_config(tmp_path / "a", **OPTIONS))
    resumed = killed_then_resumed(monkeypatch, tmp_path / "b", 2, **OPTIONS)
    assert_same_files(reference, resumed, atol=1e-6)
