"""The trainer end to end on the tiny model: outputs, the phase switch, resume, crash safety, errors."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from dash_helpers import unet_inputs, unet_output
from safetensors.torch import load_file
from train_helpers import Killed, assert_same_files, killed_then_resumed, tiny_config

import dash_diffusion.training.step as step_module
import dash_diffusion.training.train as train_module
from dash_diffusion import DashError, read_native_adapter
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline
from dash_diffusion.training.checkpoint import checkpoint_dirs


def test_outputs_load_in_stock_diffusers_and_match_native(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = train_module.train(tiny_config(tmp_path))
    assert "instance prompt: 'a photo of sks figure'" in caplog.text
    assert {p.name for p in out.iterdir()} >= {"pytorch_lora_weights.safetensors", "lora_dash_kohya.safetensors", "dash_adapter.safetensors", "training_args.json", "README.md"}
    card = (out / "README.md").read_text()
    assert "a photo of sks figure" in card and "load_lora_weights" in card and "ComfyUI" in card and "<lora:lora_dash_kohya:1>" in card
    assert json.loads((out / "training_args.json").read_text())["dash_warmup_steps"] == 2
    steps = [json.loads(line) for line in (out / "logs" / "steps.jsonl").read_text().splitlines()]
    assert [(s["step"], s["phase"]) for s in steps] == [(1, "lora"), (2, "lora"), (3, "dash"), (4, "dash")]
    assert all(s["seconds"] > 0 for s in steps)
    meta = read_native_adapter(out / "dash_adapter.safetensors").metadata
    assert (meta["selected_at_step"], meta["global_step"], meta["world_size"]) == (2, 4, 1)

    stock = build_tiny_sdxl_pipeline()
    stock.load_lora_weights(str(out))
    native = build_tiny_sdxl_pipeline()
    from dash_diffusion import load_dash_adapter

    load_dash_adapter(native.unet, out / "dash_adapter.safetensors")
    inputs = unet_inputs(native.unet)
    assert (unet_output(stock.unet, inputs) - unet_output(native.unet, inputs)).abs().max() <= 1e-5
    assert (unet_output(native.unet, inputs) - unet_output(build_tiny_sdxl_pipeline().unet, inputs)).abs().max() > 1e-4
    deltas = torch.cat([m["dash_delta"] for m in read_native_adapter(out / "dash_adapter.safetensors").modules["unet"].values()])
    assert deltas.abs().max() > 0, "dash_delta must learn in the dash phase"


def test_switch_counts_optimizer_steps_with_accumulation_checkpointing_and_validation(tmp_path, monkeypatch):
    seen = []
    original = train_module.DashSchedule.after_optimizer_step

    def spy(self, step, accelerator=None):
        switched = original(self, step, accelerator)
        if switched:
            seen.append(step)
        return switched

    monkeypatch.setattr(train_module.DashSchedule, "after_optimizer_step", spy)
    config = tiny_config(tmp_path, gradient_accumulation_steps=3, gradient_checkpointing=True, dash_warmup_steps=3, max_train_steps=5, validation_prompt="a photo of sks figure", validation_steps=1, num_validation_images=1, validation_inference_steps=2)
    out = train_module.train(config)
    assert seen == [3]
    assert read_native_adapter(out / "dash_adapter.safetensors").metadata["selected_at_step"] == 3
    assert len(list((out / "validation").glob("step-*.png"))) == 5


def test_plain_lora_run_through_the_same_loop(tmp_path):
    out = train_module.train(tiny_config(tmp_path, no_dash=True))
    tensors = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert {v.shape[0] for k, v in tensors.items() if k.endswith("lora_A.weight")} == {2}
    meta = read_native_adapter(out / "dash_adapter.safetensors").metadata
    assert meta["num_directions"] == 0 and meta["selected_at_step"] is None


@pytest.mark.parametrize("stop_at", [2, 4], ids=["before-switch", "after-switch"])
def test_resume_reproduces_uninterrupted_run(tmp_path, monkeypatch, stop_at):
    options = dict(max_train_steps=6, dash_warmup_steps=3, checkpointing_steps=2, gradient_accumulation_steps=2, random_flip=True, lr_scheduler="cosine", lora_dropout=0.1)
    reference = train_module.train(tiny_config(tmp_path / "a", **options))
    resumed = killed_then_resumed(monkeypatch, tmp_path / "b", stop_at, **options)
    assert_same_files(reference, resumed, atol=1e-6)


def test_crash_while_checkpointing_keeps_latest_intact(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, max_train_steps=4, checkpointing_steps=2)
    from accelerate import Accelerator

    real_save_state = Accelerator.save_state

    def half_written(self, output_dir=None, **kwargs):
        real_save_state(self, output_dir, **kwargs)
        if "checkpoint-4" in str(output_dir):
            raise Killed

    monkeypatch.setattr(Accelerator, "save_state", half_written)
    with pytest.raises(Killed):
        train_module.train(config)
    out = config.output_path
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-2"]
    assert (out / ".checkpoint-4.tmp").exists()
    monkeypatch.setattr(Accelerator, "save_state", real_save_state)
    train_module.train(tiny_config(tmp_path, max_train_steps=4, checkpointing_steps=2, resume_from_checkpoint="latest"))
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-2", "checkpoint-4"]
    assert not (out / ".checkpoint-4.tmp").exists()


def test_checkpoints_total_limit(tmp_path):
    out = train_module.train(tiny_config(tmp_path, max_train_steps=4, checkpointing_steps=1, checkpoints_total_limit=2))
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-3", "checkpoint-4"]


def test_nan_loss_stops_with_a_clear_message_and_keeps_checkpoint(tmp_path, monkeypatch):
    real_loss = step_module.diffusion_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(step_module, "diffusion_loss", poisoned)
    with pytest.raises(DashError, match=r"loss became \[nan\] at optimizer step 3; the last checkpoint .*checkpoint-2 is intact"):
        train_module.train(tiny_config(tmp_path, checkpointing_steps=2))
    assert [p.name for p in checkpoint_dirs(tmp_path / "out")] == ["checkpoint-2"]


def test_unreachable_model_gives_one_line(tmp_path):
    with pytest.raises(DashError, match="builtin:tiny-sdxl") as error:
        train_module.train(tiny_config(tmp_path, pretrained_model_name_or_path="no-such-org/no-such-model"))
    assert "\n" not in str(error.value)


def test_cached_and_uncached_paths_agree(tmp_path):
    cached = train_module.train(tiny_config(tmp_path / "a", max_train_steps=3))
    uncached = train_module.train(tiny_config(tmp_path / "b", max_train_steps=3, cache_latents=False))
    assert_same_files(cached, uncached, atol=1e-5)
