"""Regression tests for the findings of the trainer's line-by-line review (each test names its bug)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import draw_subject, tiny_config

import dash_diffusion.training.outputs as outputs_module
import dash_diffusion.training.setup as training_setup
import dash_diffusion.training.step as step_module
import dash_diffusion.training.train as train_module
from dash_diffusion import DashError, dash_layers, read_native_adapter
from dash_diffusion.data.dreambooth import DreamBoothDataset
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline
from dash_diffusion.training.feed import TrainingFeed
from dash_diffusion.training.sdxl import load_components, scale_latents, unscale_latents

ROOT = Path(__file__).resolve().parents[1]


def launch_two_processes(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    """``accelerate launch`` of the trainer on 2 CPU processes (see ENVIRONMENT.md for the flags)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(ROOT / "train_dreambooth_dash.py"), "--pretrained_model_name_or_path", "builtin:tiny-sdxl",
        "--resolution", "32", "--rank", "2", "--dash_directions", "3", "--dash_warmup_steps", "2", *options,
    ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_text_encoders_prior_preservation_agree_and_draw_their_own_noise(tmp_path):
    # Bug 1: the feed called the unwrapped text encoders, so DDP never averaged their adapters' gradients
    # and the ranks ended with different text-encoder adapters; the end-of-run check only compared the
    # directions. Bug 7: every process drew the same noise and timesteps.
    # One photo: both processes train on the same image, so only their noise can make their losses differ.
    # Prior preservation runs two UNet forwards per micro-batch under DDP with find_unused_parameters.
    # Also pins a teardown race: a rank still writing the files while its peer had already destroyed the
    # process group (accelerate's end_training) and exited hung in 5 of 10 launches, or aborted.
    classes = draw_subject(tmp_path / "class", count=2)
    out = tmp_path / "out"
    result = launch_two_processes(
        tmp_path, "--instance_dir", str(draw_subject(tmp_path / "figure", count=1)), "--train_text_encoder", "--text_encoder_lr", "1e-3",
        "--with_prior_preservation", "--class_dir", str(classes), "--num_class_images", "2", "--max_train_steps", "4", "--output_dir", str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = read_native_adapter(out / "dash_adapter.safetensors").metadata
    assert meta["world_size"] == 2, "accelerate started one process only"
    steps = [json.loads(line) for line in (out / "logs" / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert all(len(s["process_losses"]) == 2 and s["process_losses"][0] != s["process_losses"][1] for s in steps)
    tensors = load_file(str(out / "dash_adapter.safetensors"))
    assert any(k.startswith("text_encoder.") and k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in tensors.items())


def test_processes_that_differ_in_any_adapter_tensor_stop_the_run():
    # Bug 1 (the check): divergent text-encoder adapters went unnoticed because only directions were compared.
    unet, text = build_tiny_sdxl_pipeline().unet, build_tiny_sdxl_pipeline().text_encoder
    from dash_diffusion import DashConfig, inject_dash

    inject_dash(unet, DashConfig(rank=2, num_directions=2))
    inject_dash(text, DashConfig(rank=2, num_directions=2, target_modules=("q_proj",)))
    models = {"unet": unet, "text_encoder": text}

    class TwoProcesses:
        device = torch.device("cpu")

        def __init__(self, other):
            self.other = other

        def gather(self, local):
            return torch.cat([local, self.other])

    same = torch.stack([outputs_module.adapter_fingerprint(m) for m in models.values()])[None]
    outputs_module.check_processes_agree(TwoProcesses(same), models)
    with torch.no_grad():
        next(iter(dash_layers(text).values())).lora_B.weight[0, 0] += 1e-6
    with pytest.raises(DashError, match="different text_encoder adapters"):
        outputs_module.check_processes_agree(TwoProcesses(same), models)


def test_process_seeds_differ_and_are_deterministic():
    # Bug 7: set_seed(seed) on every process gave every process the same noise.
    seeds = [training_setup.process_seed(0, rank) for rank in range(4)]
    assert len(set(seeds)) == 4 and seeds == [training_setup.process_seed(0, rank) for rank in range(4)]
    assert training_setup.process_seed(1, 0) != training_setup.process_seed(0, 1)


def test_vae_encodes_and_decodes_in_float32_outside_autocast(tmp_path):
    # Bug 2: uncached encoding ran inside accelerator.autocast() and validation decoded inside
    # torch.autocast, so the float32 VAE's convolutions ran in bf16/fp16.
    seen = []
    from diffusers import AutoencoderKL

    real_encode, real_decode = AutoencoderKL.encode, AutoencoderKL.decode

    def watch(real, kind):
        def wrapper(self, x, *args, **kwargs):
            seen.append((kind, torch.is_autocast_enabled("cpu"), x.dtype, self.dtype))
            return real(self, x, *args, **kwargs)
        return wrapper

    AutoencoderKL.encode, AutoencoderKL.decode = watch(real_encode, "encode"), watch(real_decode, "decode")
    try:
        train_module.train(tiny_config(tmp_path, mixed_precision="bf16", cache_latents=False, max_train_steps=2, validation_prompt="a photo of sks figure", validation_steps=2, num_validation_images=1, validation_inference_steps=2))
    finally:
        AutoencoderKL.encode, AutoencoderKL.decode = real_encode, real_decode
    assert {kind for kind, *_ in seen} == {"encode", "decode"}
    assert all(not autocast and dtype == torch.float32 and vae_dtype == torch.float32 for _, autocast, dtype, vae_dtype in seen), seen


def test_delta_optimizer_state_starts_at_the_switch(tmp_path):
    # Bug 3: dash_delta was in the optimizer from step 1 with a zero gradient, so AdamW counted the
    # pre-launch steps into its bias correction; its state must start at the switch (after step t = 2).
    out = train_module.train(tiny_config(tmp_path, max_train_steps=5, checkpointing_steps=5))
    state = torch.load(out / "checkpoint-5" / "optimizer.bin", weights_only=False)["state"]
    # parameters are ordered (lora_A, lora_B, dash_delta) per layer
    lora_steps = {float(state[i]["step"]) for i in state if i % 3 != 2}
    delta_steps = {float(state[i]["step"]) for i in state if i % 3 == 2}
    assert lora_steps == {5.0} and delta_steps == {3.0}


def test_text_encoder_checkpointing_trains_the_adapters_with_reentrant_default(monkeypatch, tmp_path):
    # Bug 5: transformers 4.x defaults gradient_checkpointing_enable() to reentrant checkpointing, under
    # which 0 of 36 text-encoder adapter tensors got a gradient. Emulate that default here.
    from transformers import PreTrainedModel

    real = PreTrainedModel.gradient_checkpointing_enable

    def four_x_default(self, gradient_checkpointing_kwargs=None, **kwargs):
        return real(self, gradient_checkpointing_kwargs=gradient_checkpointing_kwargs or {"use_reentrant": True}, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "gradient_checkpointing_enable", four_x_default)
    config = tiny_config(tmp_path, train_text_encoder=True, gradient_checkpointing=True)
    components = load_components(config.pretrained_model_name_or_path)
    models = training_setup.prepare_models(config, components, torch.device("cpu"), torch.float32)
    ids = components.tokenizer(["a photo of sks figure"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    for prefix in ("text_encoder", "text_encoder_2"):
        models[prefix](ids, output_hidden_states=True).hidden_states[-2].square().mean().backward()
        grads = [layer.lora_B.weight.grad for layer in dash_layers(models[prefix]).values()]  # B = 0: A gets none yet
        # the last layer feeds no penultimate state, so its adapters get no gradient by construction
        assert sum(g is not None and g.abs().max() > 0 for g in grads) >= len(grads) - 4, prefix


def test_reference_defaults_gaussian_init_and_text_encoder_lr(tmp_path):
    # Bug 6: lora_A was Kaiming-uniform (11-20x smaller than the reference's Gaussian std 1/r) and the
    # text encoders trained at the UNet's learning rate instead of diffusers' 5e-6.
    config = tiny_config(tmp_path, train_text_encoder=True, rank=4)
    assert (config.init_lora_weights, config.text_encoder_lr) == ("gaussian", 5e-6)
    components = load_components(config.pretrained_model_name_or_path)
    models = training_setup.prepare_models(config, components, torch.device("cpu"), torch.float32)
    a = torch.cat([layer.lora_A.weight.flatten() for layer in dash_layers(models["unet"]).values()])
    assert a.std().item() == pytest.approx(1 / 4, rel=0.05)
    groups = training_setup.parameter_groups(config, models, processes=1)
    assert [g["lr"] for g in groups] == [1e-3, 5e-6, 5e-6]
    prodigy = tiny_config(tmp_path, train_text_encoder=True, optimizer="prodigy", learning_rate=1.0)
    assert [g["lr"] for g in training_setup.parameter_groups(prodigy, models, processes=1)] == [1.0, 1.0, 1.0]
    with pytest.raises(DashError, match="--init_lora_weights"):
        tiny_config(tmp_path, init_lora_weights="uniform")


def test_prior_loss_is_not_min_snr_weighted(tmp_path, monkeypatch):
    # Smaller finding: the class images' loss was Min-SNR weighted; diffusers leaves it unweighted.
    gammas = []
    real = step_module.diffusion_loss

    def spy(prediction, target, timesteps, scheduler, snr_gamma, *weights):
        gammas.append(snr_gamma)
        return real(prediction, target, timesteps, scheduler, snr_gamma, *weights)

    monkeypatch.setattr(step_module, "diffusion_loss", spy)
    classes = draw_subject(tmp_path / "class", count=2)
    train_module.train(tiny_config(tmp_path, with_prior_preservation=True, class_dir=str(classes), num_class_images=2, snr_gamma=5.0, max_train_steps=2))
    assert gammas == [5.0, None, 5.0, None]


def _feed(dataset: DreamBoothDataset, **options) -> TrainingFeed:
    components = types.SimpleNamespace(text_encoder=None, text_encoder_2=None)
    settings = dict(batch_size=1, accumulation=1, processes=1, rank=0, seed=0, device=torch.device("cpu"), cache=False, train_text_encoder=False)
    settings.update(options)
    return TrainingFeed(dataset, components, **settings)


def test_prior_preservation_epoch_sees_every_class_image_and_only_num_class_images(tmp_path):
    # Smaller findings: an epoch was as long as the instance batches (most class images never seen), and
    # every image in --class_dir was used instead of --num_class_images of them.
    instance = draw_subject(tmp_path / "figure", count=2)
    classes = draw_subject(tmp_path / "class", count=7)
    dataset = DreamBoothDataset(instance, resolution=32, class_dir=classes, num_class_images=5)
    assert dataset.class_len == 5 and [e.path.name for e in dataset.examples[2:]] == [f"figure_{i}.png" for i in range(5)]
    feed = _feed(dataset)
    batches = feed.micro_batches(0)
    assert feed.steps_per_epoch == 5
    assert sorted(c for _, (c,) in batches) == [2, 3, 4, 5, 6]
    assert sorted(Counter(i for (i,), _ in batches).values()) == [2, 3]  # the 2 instance images cycle
    two = [_feed(dataset, processes=2, rank=rank).micro_batches(0) for rank in (0, 1)]
    dealt = [c for part in two for _, (c,) in part]
    assert len(dealt) == 6 and set(dealt) == {2, 3, 4, 5, 6}  # padded to an even count by cycling


def test_default_class_prompt_and_class_generation_honours_revision_and_variant(tmp_path, monkeypatch):
    # Smaller findings: --class_prompt was required (and defaulted to "a photo of <class>" in the data),
    # and class-image generation ignored --revision and --variant.
    from diffusers import StableDiffusionXLPipeline

    seen = {}
    real = StableDiffusionXLPipeline.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return real(cls, *args, **{k: v for k, v in kwargs.items() if k != "revision"})

    monkeypatch.setattr(StableDiffusionXLPipeline, "from_pretrained", classmethod(spy))
    prompts = []
    monkeypatch.setattr(training_setup, "generate_class_images", lambda pipeline, folder, prompt, *rest: prompts.append(prompt) or draw_subject(folder, count=2))
    config = tiny_config(tmp_path, with_prior_preservation=True, class_dir=str(tmp_path / "class"), num_class_images=2, revision="main", max_train_steps=1)
    train_module.train(config)
    assert prompts == ["a photo of a figure"]
    assert seen["revision"] == "main" and "variant" in seen and "torch_dtype" not in seen


def test_validation_runs_text_encoders_in_eval_mode(tmp_path):
    # Smaller finding: validation put the UNet in eval mode but left the trained text encoders (and their
    # adapter dropout) in training mode.
    modes = []
    from transformers import CLIPTextModel

    real = CLIPTextModel.forward

    def spy(self, *args, **kwargs):
        modes.append(self.training)
        return real(self, *args, **kwargs)

    CLIPTextModel.forward = spy
    try:
        train_module.train(tiny_config(tmp_path, train_text_encoder=True, lora_dropout=0.1, cache_latents=False, max_train_steps=1, validation_prompt="a photo of sks figure", validation_steps=1, num_validation_images=1, validation_inference_steps=2))
    finally:
        CLIPTextModel.forward = real
    assert modes[0] is True and modes[-1] is False  # training step first, validation last


class Killed(Exception):
    """Stands for the process dying between two checkpoints."""


def test_steps_log_has_each_step_once_after_resume(tmp_path, monkeypatch):
    # Smaller finding: a run killed after logging step 3 and resumed from checkpoint-2 logged step 3 twice.
    real = train_module.append_step

    def die_after_step_three(path, record):
        real(path, record)
        if record["step"] == 3:
            raise Killed

    monkeypatch.setattr(train_module, "append_step", die_after_step_three)
    with pytest.raises(Killed):
        train_module.train(tiny_config(tmp_path, max_train_steps=5, checkpointing_steps=2))
    monkeypatch.setattr(train_module, "append_step", real)
    out = train_module.train(tiny_config(tmp_path, max_train_steps=5, checkpointing_steps=2, resume_from_checkpoint="latest"))
    assert [json.loads(line)["step"] for line in (out / "logs" / "steps.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_vae_latent_statistics_are_honoured(tmp_path):
    # Smaller finding: a VAE config with latents_mean / latents_std (as diffusers' pipelines honour) was
    # treated as if it had none.
    vae = build_tiny_sdxl_pipeline().vae
    raw = torch.randn(2, 4, 4, 4)
    assert torch.allclose(scale_latents(vae, raw), raw * vae.config.scaling_factor)
    mean, std = [0.1, -0.2, 0.3, 0.0], [1.5, 0.5, 2.0, 1.0]
    vae.register_to_config(latents_mean=mean, latents_std=std)
    expected = (raw - torch.tensor(mean).view(1, 4, 1, 1)) * vae.config.scaling_factor / torch.tensor(std).view(1, 4, 1, 1)
    assert torch.allclose(scale_latents(vae, raw), expected)
    assert torch.allclose(unscale_latents(vae, scale_latents(vae, raw)), raw, atol=1e-6)


def test_save_precision_and_missing_wandb(tmp_path, monkeypatch):
    # Users of sd-scripts expect --save_precision; --report_to wandb without wandb must say what to install.
    out = train_module.train(tiny_config(tmp_path, save_precision="fp16", max_train_steps=1))
    tensors = load_file(str(out / "lora_dash_kohya.safetensors"))
    assert {v.dtype for k, v in tensors.items() if k.endswith("weight")} == {torch.float16}
    monkeypatch.setitem(sys.modules, "wandb", None)  # importlib.util.find_spec then finds nothing
    with pytest.raises(DashError, match="pip install wandb"):
        train_module.train(tiny_config(tmp_path / "w", report_to="wandb"))


def test_exported_text_files_are_complete_even_when_a_format_fails(tmp_path, monkeypatch):
    # Bug 4: a kohya export failure left only the diffusers file (no native file, card or training_args).
    import dash_diffusion.formats.export as export_module

    def broken(components):
        raise DashError("kohya cannot name this module")

    monkeypatch.setattr(export_module, "kohya_state_dict", broken)
    with pytest.raises(DashError, match="kohya"):
        train_module.train(tiny_config(tmp_path, max_train_steps=1))
    out = tmp_path / "out"
    assert {"dash_adapter.safetensors", "pytorch_lora_weights.safetensors", "training_args.json", "README.md"} <= {p.name for p in out.iterdir()}


def test_targets_beyond_attention_train_and_export_all_files(tmp_path):
    # Bug 4: --target_modules ...,time_emb_proj trained to the end, then the kohya export raised and the
    # folder held only the diffusers file. Transformer-block Linears now export everywhere; a module the
    # kohya format cannot name is refused before any model is loaded.
    targets = "to_q,to_k,to_v,to_out.0,proj_in,proj_out,ff.net.0.proj,ff.net.2"
    out = train_module.train(tiny_config(tmp_path, target_modules=targets, max_train_steps=3))
    kohya = load_file(str(out / "lora_dash_kohya.safetensors"))
    for suffix in ("_1_proj_in", "_1_proj_out", "transformer_blocks_0_ff_net_0_proj", "transformer_blocks_0_ff_net_2"):
        assert any(key.endswith(f"{suffix}.lora_down.weight") for key in kohya), suffix
    stock = build_tiny_sdxl_pipeline()
    stock.load_lora_weights(str(out), weight_name="lora_dash_kohya.safetensors")
    from dash_diffusion.training.cli import main

    # time_emb_proj has a kohya name since LoRA-Dash adapts resnets (emb_layers.1); add_embedding.linear_1 has none
    with pytest.raises(DashError, match="add_embedding.linear_1"):
        tiny_config(tmp_path, target_modules="to_q,add_embedding.linear_1")
    assert main(["--instance_dir", str(tmp_path / "figure"), "--target_modules", "to_q,add_embedding.linear_1", "--pretrained_model_name_or_path", "no-such-org/never-loaded"]) == 2


def test_validation_images_reach_a_wandb_tracker(tmp_path, monkeypatch):
    # --report_to wandb: validation images are logged as wandb.Image at their optimizer step.
    from PIL import Image

    from dash_diffusion.training.validation import save_validation

    logged = []
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Image=lambda image, caption: (image.size, caption)))
    tracker = types.SimpleNamespace(name="wandb", log=lambda values, step: logged.append((values, step)))
    paths = save_validation([Image.new("RGB", (8, 8))], tmp_path / "validation", 7, [tracker])
    assert [p.name for p in paths] == ["step-000007-0.png"]
    assert logged == [({"validation": [((8, 8), "step 7")]}, 7)]
