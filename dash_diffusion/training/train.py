"""``train(config)``: DreamBooth LoRA-Dash training of SDXL on accelerate.

One optimizer step = ``gradient_accumulation_steps`` micro-batches on every process. The LoRA-Dash
schedule (:mod:`.schedule`) is driven by the optimizer step: plain LoRA for ``t`` steps, then the
directions are selected (each process selects a share of the layers and broadcasts it) and
``dash_delta`` starts to learn. Adapter weights stay float32 under fp16/bf16 mixed precision; the frozen UNet and text encoders are cast to
the mixed-precision dtype before the adapters are injected, and the VAE stays float32 unless it declares
itself fp16-safe (``force_upcast`` false).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.dreambooth import DreamBoothDataset
from ..errors import DashError
from ..formats.export import save_adapter
from ..lora_dash.config import TEXT_ENCODER_TARGET_MODULES, DashConfig
from ..lora_dash.inject import dash_config_of, inject_dash, trainable_parameters
from ..lora_dash.schedule import DashSchedule, directions_fingerprint
from .checkpoint import load_checkpoint, register_adapter_hooks, resolve_resume, save_checkpoint
from .class_images import generate_class_images, missing_class_images
from .feed import TrainingFeed
from .model_card import model_card
from .optim import make_lr_scheduler, make_optimizer
from .sdxl import SDXLComponents, diffusion_loss, load_components, sample_noise, training_target
from .train_config import TrainConfig
from .validation import render_validation, save_validation

logger = logging.getLogger(__name__)
DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def effective_learning_rate(config: TrainConfig, processes: int) -> float:
    """``--learning_rate``, times batch size x accumulation x processes with ``--scale_lr``."""
    if not config.scale_lr:
        return config.learning_rate
    return config.learning_rate * config.train_batch_size * config.gradient_accumulation_steps * processes


def make_accelerator(config: TrainConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    if config.report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError as error:
            raise DashError("--report_to tensorboard needs tensorboard: pip install tensorboard, or drop the option") from error
    # dash_U/dash_V are constant buffers: broadcasting them on every forward would only cost bandwidth.
    # The first CLIP encoder's last layer feeds no output (SDXL uses its penultimate states).
    from accelerate.state import AcceleratorState

    if not torch.distributed.is_initialized():
        # train() may run several times in one process (notebooks, tests): forget the previous run's
        # mixed-precision choice. A launched multi-process run keeps its process group.
        AcceleratorState._reset_state(reset_partial_state=True)
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False, find_unused_parameters=config.train_text_encoder)
    project = ProjectConfiguration(project_dir=config.output_dir, logging_dir=str(Path(config.output_dir) / "logs"))
    return Accelerator(
        mixed_precision=config.mixed_precision,
        log_with=None if config.report_to == "none" else config.report_to,
        project_config=project,
        kwargs_handlers=[ddp],
    )


def prepare_models(config: TrainConfig, components: SDXLComponents, device: torch.device, weight_dtype: torch.dtype) -> dict[str, torch.nn.Module]:
    """Freeze and place the models, inject the adapters; returns the adapted models by prefix."""
    for model in (components.unet, components.vae, components.text_encoder, components.text_encoder_2):
        model.requires_grad_(False)
    vae_dtype = torch.float32 if components.vae.config.get("force_upcast", True) else weight_dtype
    for model, dtype in ((components.vae, vae_dtype), (components.unet, weight_dtype), (components.text_encoder, weight_dtype), (components.text_encoder_2, weight_dtype)):
        model.to(device) if model.dtype == dtype else model.to(device, dtype=dtype)
    models = {"unet": components.unet}
    inject_dash(components.unet, config.dash_config())
    if config.train_text_encoder:
        unet_config = config.dash_config()
        text_config = DashConfig(unet_config.rank, unet_config.alpha, unet_config.dropout, unet_config.num_directions, unet_config.warmup_steps, TEXT_ENCODER_TARGET_MODULES)
        for prefix in ("text_encoder", "text_encoder_2"):
            inject_dash(getattr(components, prefix), text_config)
            models[prefix] = getattr(components, prefix)
    if config.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
        if config.train_text_encoder:
            components.text_encoder.gradient_checkpointing_enable()
            components.text_encoder_2.gradient_checkpointing_enable()
    for model in models.values():
        model.train()
    return models


def ensure_class_images(config: TrainConfig, components: SDXLComponents, accelerator: Any) -> None:
    """Generate missing prior-preservation images on the main process; the others wait."""
    class_dir = Path(config.class_dir)
    if accelerator.is_main_process and missing_class_images(class_dir, config.num_class_images):
        from diffusers import StableDiffusionXLPipeline

        pipeline = StableDiffusionXLPipeline.from_pretrained(components.model_path, torch_dtype=torch.float16 if accelerator.device.type == "cuda" else torch.float32)
        pipeline.to(accelerator.device)
        pipeline.set_progress_bar_config(disable=True)
        generate_class_images(pipeline, class_dir, config.class_prompt, config.num_class_images, config.sample_batch_size, config.resolution, config.seed)
        del pipeline
    accelerator.wait_for_everyone()


def micro_step_loss(config: TrainConfig, unet: Any, components: SDXLComponents, feed: TrainingFeed, indices: list[int], epoch: int, weight_dtype: torch.dtype) -> torch.Tensor:
    """Diffusion loss of one micro-batch (noise and timesteps drawn from the global RNG)."""
    inputs = feed.inputs(indices, epoch)
    latents = inputs.latents
    noise = sample_noise(latents, config.noise_offset)
    steps = components.noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (latents.shape[0],), device=latents.device).long()
    noisy = components.noise_scheduler.add_noise(latents, noise, timesteps)
    prediction = unet(
        noisy.to(weight_dtype),
        timesteps,
        encoder_hidden_states=inputs.prompt_embeds.to(weight_dtype),
        added_cond_kwargs={"text_embeds": inputs.pooled.to(weight_dtype), "time_ids": inputs.time_ids.to(weight_dtype)},
        return_dict=False,
    )[0]
    target = training_target(components.noise_scheduler, latents, noise, timesteps)
    return diffusion_loss(prediction, target, timesteps, components.noise_scheduler, config.snr_gamma)


def check_ranks_agree(accelerator: Any, models: dict[str, torch.nn.Module]) -> None:
    """Every process must hold the same directions; anything else is a bug worth stopping for."""
    fingerprints = accelerator.gather(directions_fingerprint(models).to(accelerator.device)[None])
    if not torch.equal(fingerprints, fingerprints[:1].expand_as(fingerprints)):
        raise DashError(f"processes disagree on the selected directions ({fingerprints.tolist()}): please report this with your accelerate config")


def write_outputs(config: TrainConfig, models: dict[str, torch.nn.Module], dataset: DreamBoothDataset, schedule: DashSchedule, global_step: int, world_size: int = 1) -> Path:
    """The three adapter files, ``training_args.json`` and the README model card."""
    output = config.output_path
    metadata = {
        "base_model": config.pretrained_model_name_or_path,
        "selected_at_step": schedule.selected_at_step,
        "global_step": global_step,
        "instance_prompt": dataset.instance_prompt,
        "world_size": world_size,
        "trainer": "dash_diffusion train_dreambooth_dash.py",
    }
    save_adapter(output, models["unet"], models.get("text_encoder"), models.get("text_encoder_2"), metadata=metadata)
    (output / "training_args.json").write_text(json.dumps(config.to_dict(), indent=2))
    card_meta = {**dash_config_of(models["unet"]).to_dict(), **metadata}
    (output / "README.md").write_text(model_card(config.pretrained_model_name_or_path, dataset.instance_prompt, card_meta, config.train_text_encoder))
    return output


def train(config: TrainConfig) -> Path:
    """Run one DreamBooth LoRA-Dash training; returns the folder holding the exported adapter."""
    from accelerate.utils import set_seed

    accelerator = make_accelerator(config)
    set_seed(config.seed)
    if config.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    output = config.output_path
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
    weight_dtype = DTYPES[config.mixed_precision]
    device = accelerator.device

    def make_dataset(with_class_images: bool) -> DreamBoothDataset:
        return DreamBoothDataset(
            config.instance_dir, config.instance_prompt, config.resolution, config.center_crop, config.random_flip, config.repeats,
            config.bucketing, config.bucket_step, config.seed,
            class_dir=config.class_dir if with_class_images else None, class_prompt=config.class_prompt,
        )

    dataset = make_dataset(False)  # bad instance data fails here, before any model is loaded
    components = load_components(config.pretrained_model_name_or_path, config.pretrained_vae_model_name_or_path, config.revision, config.variant)
    if config.with_prior_preservation:
        ensure_class_images(config, components, accelerator)
        dataset = make_dataset(True)
    if accelerator.is_main_process:
        logger.info("instance prompt: '%s'", dataset.instance_prompt)
    models = prepare_models(config, components, device, weight_dtype)
    feed = TrainingFeed(dataset, components, config.train_batch_size, config.gradient_accumulation_steps, accelerator.num_processes, accelerator.process_index, config.seed, device, config.cache_latents, config.train_text_encoder)
    feed.warm_cache()

    learning_rate = effective_learning_rate(config, accelerator.num_processes)
    groups = [{"params": trainable_parameters(models["unet"]), "lr": learning_rate}]
    for prefix in ("text_encoder", "text_encoder_2"):
        if prefix in models:
            groups.append({"params": trainable_parameters(models[prefix]), "lr": config.text_encoder_lr or learning_rate})
    optimizer = make_optimizer(config, groups)
    steps_per_epoch = feed.steps_per_epoch
    total_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
    lr_scheduler = make_lr_scheduler(config, optimizer, total_steps)

    prepared = accelerator.prepare(*models.values(), optimizer)
    wrapped = dict(zip(models, prepared[:-1]))
    optimizer = prepared[-1]
    accelerator.register_for_checkpointing(lr_scheduler)
    register_adapter_hooks(accelerator, {id(model): prefix for prefix, model in models.items()})
    schedule = DashSchedule(config.dash_warmup_steps, models, enabled=not config.no_dash)
    if accelerator.is_main_process and config.report_to != "none":
        accelerator.init_trackers("dash_diffusion", config={k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))})

    global_step = 0
    resume = resolve_resume(output, config.resume_from_checkpoint)
    if resume is not None:
        state = load_checkpoint(accelerator, resume)
        global_step = state["global_step"]
        schedule.selected_at_step = state.get("selected_at_step")
        logger.info("resumed from %s after optimizer step %d (next step's phase: %s)", resume, global_step, schedule.phase(global_step + 1))
    elif config.resume_from_checkpoint and accelerator.is_main_process:
        logger.info("no checkpoint in %s yet: starting from scratch", output)
    schedule.after_optimizer_step(global_step, accelerator)  # t = 0 selects before the first step

    params = [p for group in groups for p in group["params"]]
    steps_log = output / "logs" / "steps.jsonl"  # one JSON line per optimizer step: loss, lr, phase, seconds
    if accelerator.is_main_process:
        steps_log.parent.mkdir(parents=True, exist_ok=True)
    progress = tqdm(total=total_steps, initial=global_step, desc="training", disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    last_checkpoint = None
    while global_step < total_steps:
        epoch = global_step // steps_per_epoch
        batches = feed.micro_batches(epoch)
        start = global_step - epoch * steps_per_epoch
        for step_in_epoch in range(start, steps_per_epoch):
            step_started = time.perf_counter()
            micro = batches[step_in_epoch * config.gradient_accumulation_steps : (step_in_epoch + 1) * config.gradient_accumulation_steps]
            step_loss = 0.0
            for position, (instance, class_batch) in enumerate(micro):
                sync = position == len(micro) - 1
                with contextlib.ExitStack() as stack:
                    if not sync and accelerator.num_processes > 1:
                        for model in wrapped.values():
                            stack.enter_context(accelerator.no_sync(model))
                    with accelerator.autocast():
                        loss = micro_step_loss(config, wrapped["unet"], components, feed, instance, epoch, weight_dtype)
                        if class_batch is not None:
                            loss = loss + config.prior_loss_weight * micro_step_loss(config, wrapped["unet"], components, feed, class_batch, epoch, weight_dtype)
                    losses = accelerator.gather(loss.detach().reshape(1))
                    if not torch.isfinite(losses).all():
                        where = f"; the last checkpoint {last_checkpoint} is intact" if last_checkpoint else ""
                        raise DashError(f"loss became {losses.tolist()} at optimizer step {global_step + 1}{where}: lower --learning_rate, use --mixed_precision bf16 or an fp16-safe VAE")
                    accelerator.backward(loss / len(micro))
                step_loss += losses.mean().item() / len(micro)
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            schedule.after_optimizer_step(global_step, accelerator)
            phase = schedule.phase(global_step)
            lr = lr_scheduler.get_last_lr()[0]
            progress.update(1)
            progress.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}", phase=phase)
            accelerator.log({"loss": step_loss, "lr": lr, "phase_dash": int(phase == "dash")}, step=global_step)
            if accelerator.is_main_process:
                record = {"step": global_step, "loss": step_loss, "lr": lr, "phase": phase, "seconds": time.perf_counter() - step_started}
                with open(steps_log, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
            if global_step % config.checkpointing_steps == 0 or global_step == total_steps:
                state = {"selected_at_step": schedule.selected_at_step, "epoch": epoch, "phase": phase}
                last_checkpoint = save_checkpoint(accelerator, output, global_step, state, config.checkpoints_total_limit)
            if config.validation_prompt and accelerator.is_main_process and (global_step % config.validation_steps == 0 or global_step == total_steps):
                images = render_validation(components, accelerator.unwrap_model(wrapped["unet"]), config.validation_prompt, config.num_validation_images, config.validation_inference_steps, config.resolution, config.seed, device, weight_dtype if config.mixed_precision != "no" else None)
                tracker = accelerator.get_tracker("tensorboard", unwrap=False) if config.report_to == "tensorboard" else None
                save_validation(images, output / "validation", global_step, tracker)
            if global_step >= total_steps:
                break
    progress.close()

    accelerator.wait_for_everyone()
    check_ranks_agree(accelerator, models)
    if accelerator.is_main_process:
        write_outputs(config, models, dataset, schedule, global_step, accelerator.num_processes)
    accelerator.end_training()
    return output
