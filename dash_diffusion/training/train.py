"""``train(config)``: DreamBooth LoRA-Dash training of SDXL on accelerate, as the algorithm reads::

    run = set_up(config)                       # accelerator, data, models + adapters, optimizer
    resume(run)                                # optimizer step, RNG, adapters from a checkpoint
    while run.global_step < total:
        losses = optimizer_step(run, ...)      # accumulation micro-batches, then one update
        end_of_step(run, ...)                  # phase switch at step t, log, checkpoint, validation
    finish(run)                                # processes agree, files written

One optimizer step = ``gradient_accumulation_steps`` micro-batches on every process. The LoRA-Dash
schedule (:mod:`..lora_dash.schedule`) is driven by the optimizer step: plain LoRA for ``t`` steps, then
the directions are selected (each process selects a share of the layers and broadcasts it) and
``dash_delta`` starts to learn, with optimizer state that starts then.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.dreambooth import DreamBoothDataset
from ..lora_dash.schedule import DashSchedule
from ..models.builtin import resolve_model_path
from .checkpoint import load_checkpoint, register_adapter_hooks, resolve_resume, save_checkpoint
from .feed import TrainingFeed
from .optim import make_lr_scheduler, make_optimizer
from .outputs import STEPS_LOG, append_step, check_processes_agree, truncate_steps_log, write_outputs
from .sdxl import SDXLComponents, load_components
from .setup import DTYPES, ensure_class_images, make_accelerator, make_dataset, parameter_groups, prepare_models, process_seed
from .step import optimizer_step
from .train_config import TrainConfig
from .validation import render_validation, save_validation

logger = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """Everything a run holds from one optimizer step to the next."""

    config: TrainConfig
    accelerator: Any
    components: SDXLComponents
    dataset: DreamBoothDataset
    models: dict[str, nn.Module]  # the adapted models by prefix ("unet", "text_encoder", ...)
    wrapped: dict[str, nn.Module]  # the same models as accelerate prepared them (DDP wrappers)
    feed: TrainingFeed
    optimizer: Any
    lr_scheduler: Any
    schedule: DashSchedule
    weight_dtype: torch.dtype
    total_steps: int
    global_step: int = 0
    last_checkpoint: Path | None = None

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    @property
    def steps_log(self) -> Path:
        return self.config.output_path / STEPS_LOG


def set_up(config: TrainConfig) -> TrainingRun:
    """Build the run; bad instance data fails before any model is loaded."""
    from accelerate.utils import set_seed

    resolve_model_path(config.pretrained_model_name_or_path)  # a built-in model is written before any process group exists
    accelerator = make_accelerator(config)
    set_seed(config.seed)  # the same on every process: adapter initialisation must agree
    if config.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    if accelerator.is_main_process:
        config.output_path.mkdir(parents=True, exist_ok=True)
    weight_dtype = DTYPES[config.mixed_precision]
    dataset = make_dataset(config, with_class_images=False)
    components = load_components(config.pretrained_model_name_or_path, config.pretrained_vae_model_name_or_path, config.revision, config.variant)
    if config.with_prior_preservation:
        ensure_class_images(config, components, accelerator)
        dataset = make_dataset(config, with_class_images=True)
    if accelerator.is_main_process:
        logger.info("instance prompt: '%s'", dataset.instance_prompt)
    models = prepare_models(config, components, accelerator.device, weight_dtype)
    optimizer = make_optimizer(config, parameter_groups(config, models, accelerator.num_processes))
    prepared = accelerator.prepare(*models.values(), optimizer)
    wrapped = dict(zip(models, prepared[:-1]))
    text_encoders = (wrapped["text_encoder"], wrapped["text_encoder_2"]) if config.train_text_encoder else None
    feed = TrainingFeed(dataset, components, config.train_batch_size, config.gradient_accumulation_steps, accelerator.num_processes, accelerator.process_index, config.seed, accelerator.device, config.cache_latents, config.train_text_encoder, text_encoders)
    feed.warm_cache()
    total_steps = config.max_train_steps or config.num_train_epochs * feed.steps_per_epoch
    lr_scheduler = make_lr_scheduler(config, optimizer, total_steps)
    accelerator.register_for_checkpointing(lr_scheduler)
    register_adapter_hooks(accelerator, {id(model): prefix for prefix, model in models.items()})
    if accelerator.is_main_process and config.report_to != "none":
        accelerator.init_trackers("dash_diffusion", config={k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))})
    schedule = DashSchedule(config.dash_warmup_steps, models, enabled=not config.no_dash)
    set_seed(process_seed(config.seed, accelerator.process_index))  # each process draws its own noise
    return TrainingRun(config, accelerator, components, dataset, models, wrapped, feed, prepared[-1], lr_scheduler, schedule, weight_dtype, total_steps)


def resume(run: TrainingRun) -> None:
    """Continue from ``--resume_from_checkpoint`` (adapters, optimizer, scheduler, every process's RNG),
    then select directions if step t is already behind (t = 0 selects before the first step)."""
    config, accelerator = run.config, run.accelerator
    checkpoint = resolve_resume(config.output_path, config.resume_from_checkpoint)
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint)
        run.global_step = state["global_step"]
        run.schedule.selected_at_step = state.get("selected_at_step")
        run.last_checkpoint = checkpoint
        logger.info("resumed from %s after optimizer step %d (next step's phase: %s)", checkpoint, run.global_step, run.schedule.phase(run.global_step + 1))
    elif config.resume_from_checkpoint and accelerator.is_main_process:
        logger.info("no checkpoint in %s yet: starting from scratch", config.output_path)
    run.schedule.after_optimizer_step(run.global_step, accelerator)
    if accelerator.is_main_process:
        run.steps_log.parent.mkdir(parents=True, exist_ok=True)
        truncate_steps_log(run.steps_log, run.global_step)


def end_of_step(run: TrainingRun, epoch: int, process_losses: list[float], seconds: float) -> dict[str, Any]:
    """After optimizer step ``run.global_step``: the phase switch, the logs, a checkpoint, validation.
    Returns the step's log record."""
    config, accelerator, step = run.config, run.accelerator, run.global_step
    run.schedule.after_optimizer_step(step, accelerator)
    phase = run.schedule.phase(step)
    loss = sum(process_losses) / len(process_losses)
    record = {"step": step, "loss": loss, "lr": run.lr_scheduler.get_last_lr()[0], "phase": phase, "seconds": seconds}
    if len(process_losses) > 1:
        record["process_losses"] = process_losses
    accelerator.log({"loss": loss, "lr": record["lr"], "phase_dash": int(phase == "dash")}, step=step)
    if accelerator.is_main_process:
        append_step(run.steps_log, record)
    if step % config.checkpointing_steps == 0 or step == run.total_steps:
        state = {"selected_at_step": run.schedule.selected_at_step, "epoch": epoch, "phase": phase}
        run.last_checkpoint = save_checkpoint(accelerator, config.output_path, step, state, config.checkpoints_total_limit)
    if config.validation_prompt and accelerator.is_main_process and (step % config.validation_steps == 0 or step == run.total_steps):
        validate(run)
    return record


def validate(run: TrainingRun) -> None:
    """Render the validation prompt with the live adapters and save (and log) the images."""
    config, accelerator = run.config, run.accelerator
    autocast_dtype = run.weight_dtype if config.mixed_precision != "no" else None
    images = render_validation(run.components, accelerator.unwrap_model(run.wrapped["unet"]), config.validation_prompt, config.num_validation_images, config.validation_inference_steps, config.resolution, config.seed, accelerator.device, autocast_dtype)
    trackers = [accelerator.get_tracker(config.report_to, unwrap=False)] if config.report_to != "none" else []
    save_validation(images, config.output_path / "validation", run.global_step, trackers)


def finish(run: TrainingRun) -> Path:
    """Check that every process holds the same adapters, then write the files (main process)."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    check_processes_agree(accelerator, run.models)
    if accelerator.is_main_process:
        write_outputs(run.config, run.models, run.dataset.instance_prompt, run.schedule.selected_at_step, run.global_step, accelerator.num_processes)
    # end_training() destroys the process group: do it together, or a process whose peer has already
    # torn down and exited can hang in the teardown (seen in 2-process CPU runs)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run.config.output_path


def train(config: TrainConfig) -> Path:
    """Run one DreamBooth LoRA-Dash training; returns the folder holding the exported adapter."""
    run = set_up(config)
    resume(run)
    progress = tqdm(total=run.total_steps, initial=run.global_step, desc="training", disable=not run.accelerator.is_local_main_process, dynamic_ncols=True)
    while run.global_step < run.total_steps:
        epoch, micro_batches = run.feed.step_batches(run.global_step)
        started = time.perf_counter()
        losses = optimizer_step(run, epoch, micro_batches)
        run.global_step += 1
        record = end_of_step(run, epoch, losses, time.perf_counter() - started)
        progress.update(1)
        progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", phase=record["phase"])
    progress.close()
    return finish(run)
