"""Each trainer option group does what it says, on the tiny model."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import tiny_config

import dash_diffusion.training.setup as training_setup
import dash_diffusion.training.train as train_module
from dash_diffusion import DashError, dash_layers, load_dash_adapter, read_native_adapter
from dash_diffusion.models.builtin import resolve_model_path
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline
from dash_diffusion.training.optim import make_lr_scheduler, make_optimizer
from dash_diffusion.training.sdxl import diffusion_loss, load_components, training_target


def test_train_text_encoder_exports_both_encoders_exactly(tmp_path):
    out = train_module.train(tiny_config(tmp_path, train_text_encoder=True))
    keys = load_file(str(out / "pytorch_lora_weights.safetensors")).keys()
    assert any(k.startswith("text_encoder.text_model.") for k in keys) and any(k.startswith("text_encoder_2.text_model.") for k in keys)
    stock, native = build_tiny_sdxl_pipeline(), build_tiny_sdxl_pipeline()
    stock.load_lora_weights(str(out))
    for prefix in ("text_encoder", "text_encoder_2"):
        load_dash_adapter(getattr(native, prefix), out / "dash_adapter.safetensors", prefix=prefix)
    ids = stock.tokenizer(["a photo of sks figure"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        for prefix in ("text_encoder", "text_encoder_2"):
            a = getattr(stock, prefix)(ids, output_hidden_states=True).hidden_states[-2]
            b = getattr(native, prefix)(ids, output_hidden_states=True).hidden_states[-2]
            assert (a - b).abs().max() <= 1e-5


def test_bf16_mixed_precision_keeps_adapters_fp32_and_vae_fp32(tmp_path):
    config = tiny_config(tmp_path, mixed_precision="bf16")
    components = load_components(config.pretrained_model_name_or_path)
    models = training_setup.prepare_models(config, components, torch.device("cpu"), torch.bfloat16)
    layer = next(iter(dash_layers(models["unet"]).values()))
    assert layer.base_layer.weight.dtype == torch.bfloat16 and layer.lora_A.weight.dtype == torch.float32
    assert components.vae.dtype == torch.float32, "the SDXL VAE (force_upcast) must stay in float32"
    out = train_module.train(config)
    assert read_native_adapter(out / "dash_adapter.safetensors").metadata["global_step"] == 4


def test_fp16_safe_vae_is_used_in_half_precision(tmp_path):
    vae = build_tiny_sdxl_pipeline().vae
    vae.register_to_config(force_upcast=False)
    vae.save_pretrained(tmp_path / "vae_fp16_fix")
    config = tiny_config(tmp_path, mixed_precision="bf16", pretrained_vae_model_name_or_path=str(tmp_path / "vae_fp16_fix"))
    components = load_components(config.pretrained_model_name_or_path, config.pretrained_vae_model_name_or_path)
    training_setup.prepare_models(config, components, torch.device("cpu"), torch.bfloat16)
    assert components.vae.dtype == torch.bfloat16


def test_variant_and_revision_are_passed_to_loading(tmp_path, monkeypatch):
    folder = tmp_path / "tiny-fp16-variant"
    build_tiny_sdxl_pipeline().save_pretrained(folder, variant="fp16")
    out = train_module.train(tiny_config(tmp_path, pretrained_model_name_or_path=str(folder), variant="fp16", max_train_steps=1))
    assert (out / "dash_adapter.safetensors").is_file()
    with pytest.raises(DashError, match="cannot load model"):
        load_components(str(folder))  # no plain (non-variant) weights there
    from diffusers import UNet2DConditionModel

    seen = {}
    real = UNet2DConditionModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "from_pretrained", classmethod(spy))
    load_components(resolve_model_path("builtin:tiny-sdxl"), revision="main")
    assert seen["revision"] == "main"


def test_prior_preservation_generates_class_images_once(tmp_path, monkeypatch):
    class_dir = tmp_path / "class"
    options = dict(with_prior_preservation=True, class_dir=str(class_dir), class_prompt="a photo of a figure", num_class_images=2, sample_batch_size=2, max_train_steps=2)
    train_module.train(tiny_config(tmp_path, **options))
    assert sorted(p.name for p in class_dir.glob("*.png")) == ["class-00000.png", "class-00001.png"]

    def no_generation(*args, **kwargs):
        raise AssertionError("class images should be reused")

    monkeypatch.setattr(training_setup, "generate_class_images", no_generation)
    out = train_module.train(tiny_config(tmp_path, output_dir=str(tmp_path / "again"), **options))
    assert (out / "pytorch_lora_weights.safetensors").is_file()


def test_bucketing_trains_on_non_square_batches(tmp_path):
    config = tiny_config(tmp_path, bucketing=True, bucket_step=8, max_train_steps=4, train_batch_size=1)
    out = train_module.train(config)
    from dash_diffusion.data.dreambooth import DreamBoothDataset

    sizes = set(DreamBoothDataset(config.instance_dir, resolution=32, bucketing=True, bucket_step=8).target_sizes)
    assert len(sizes) > 1 and any(h != w for h, w in sizes)
    assert (out / "dash_adapter.safetensors").is_file()


def test_epochs_and_repeats_define_the_step_count(tmp_path):
    out = train_module.train(tiny_config(tmp_path, max_train_steps=None, num_train_epochs=2, repeats=2, train_batch_size=2, gradient_accumulation_steps=2))
    # 4 images x 2 repeats / batch 2 = 4 micro-batches = 2 optimizer steps per epoch
    assert read_native_adapter(out / "dash_adapter.safetensors").metadata["global_step"] == 4


def test_target_modules_alpha_and_loss_options(tmp_path):
    out = train_module.train(tiny_config(tmp_path, target_modules="to_q,to_v", lora_alpha=8, snr_gamma=5.0, noise_offset=0.05, max_grad_norm=0.0, lr_scheduler="linear", lr_warmup_steps=1))
    adapter = read_native_adapter(out / "dash_adapter.safetensors")
    assert {name.rsplit(".", 1)[-1] for name in adapter.modules["unet"]} == {"to_q", "to_v"}
    assert adapter.metadata["alpha"] == 8.0


def test_tensorboard_logging(tmp_path):
    out = train_module.train(tiny_config(tmp_path, report_to="tensorboard", validation_prompt="a photo of sks figure", validation_steps=2, num_validation_images=1, validation_inference_steps=2))
    assert list((out / "logs").rglob("events.out.tfevents.*"))


def test_prodigy_optimizer_trains(tmp_path):
    out = train_module.train(tiny_config(tmp_path, optimizer="prodigy", learning_rate=1.0))
    assert (out / "dash_adapter.safetensors").is_file()


def test_missing_optional_optimizers_give_clear_errors(tmp_path, monkeypatch):
    params = [{"params": [torch.nn.Parameter(torch.zeros(2))]}]
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(DashError, match="pip install bitsandbytes"):
        make_optimizer(tiny_config(tmp_path, use_8bit_adam=True), params)
    monkeypatch.setitem(sys.modules, "prodigyopt", None)
    with pytest.raises(DashError, match="pip install prodigyopt"):
        make_optimizer(tiny_config(tmp_path, optimizer="prodigy"), params)
    calls = {}
    fake = types.SimpleNamespace(optim=types.SimpleNamespace(AdamW8bit=lambda groups, **kw: calls.update(kw) or "adamw8bit"))
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    assert make_optimizer(tiny_config(tmp_path, use_8bit_adam=True, adam_beta2=0.99), params) == "adamw8bit"
    assert calls["betas"] == (0.9, 0.99)


def test_scale_lr_and_schedules(tmp_path):
    config = tiny_config(tmp_path, scale_lr=True, learning_rate=1e-4, train_batch_size=2, gradient_accumulation_steps=3)
    assert training_setup.effective_learning_rate(config, processes=2) == pytest.approx(1.2e-3)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_lr_scheduler(tiny_config(tmp_path, lr_scheduler="linear", lr_warmup_steps=2), optimizer, total_steps=10)
    rates = []
    for _ in range(4):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.0, 0.5, 1.0, 0.875])


def test_min_snr_weighting_and_v_prediction_target():
    scheduler = build_tiny_sdxl_pipeline().scheduler
    from diffusers import DDPMScheduler

    ddpm = DDPMScheduler.from_config(scheduler.config)
    pred, target = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)
    t = torch.tensor([1, 100, 500, 999])
    plain = diffusion_loss(pred, target, t, ddpm, None)
    assert diffusion_loss(pred, target, t, ddpm, 1e9) == pytest.approx(plain.item(), rel=1e-5)
    assert diffusion_loss(pred, target, t, ddpm, 1.0) < plain  # low-noise steps (high SNR) are down-weighted
    v_sched = DDPMScheduler.from_config({**ddpm.config, "prediction_type": "v_prediction"})
    latents, noise = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)
    assert torch.equal(training_target(ddpm, latents, noise, t), noise)
    assert torch.allclose(training_target(v_sched, latents, noise, t), v_sched.get_velocity(latents, noise, t))
