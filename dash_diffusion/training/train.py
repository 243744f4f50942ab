"""``train(config)``: DreamBooth LoRA-Dash training of SDXL on accelerate, as the algorithm reads::

    run = set_up(config)                       # accelerator, data, models + adapters, optimizer, run.toml
    resume(run)                                # optimizer step, RNG, adapters from a checkpoint
    while run.global_step < total:
        stop_if_asked(run, ...)                # STOP file or signal: checkpoint, then TrainingStopped
        losses = optimizer_step(run, ...)      # accumulation micro-batches, then one update
        end_of_step(run, ...)                  # phase switch at step t, log, checkpoint, validation
    finish(run)                                # processes agree, files written

``logs/run_state.json`` follows the run (running, stopped, finished or failed: :mod:`.run_state`).

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
from typing import Any, NoReturn

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
from .run_file import RUN_FILE, write_run_file
from .run_state import SELECTION, RunStatus, one_line, write_selection
from .sdxl import SDXLComponents, load_components
from .setup import DTYPES, ensure_class_images, make_accelerator, make_dataset, parameter_groups, prepare_models, process_seed
from .step import optimizer_step
from .stop import StopRequest, TrainingStopped
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
        write_run_file(config, config.output_path / RUN_FILE)  # how to repeat the run: --config output_dir/run.toml
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
    if checkpoint is None and accelerator.is_main_process:
        (config.output_path / SELECTION).unlink(missing_ok=True)  # an earlier run's, in this folder
    if run.schedule.after_optimizer_step(run.global_step, accelerator):
        record_selection(run)
    if accelerator.is_main_process:
        run.steps_log.parent.mkdir(parents=True, exist_ok=True)
        truncate_steps_log(run.steps_log, run.global_step)


def end_of_step(run: TrainingRun, epoch: int, process_losses: list[float], seconds: float) -> dict[str, Any]:
    """After optimizer step ``run.global_step``: the phase switch, the logs, a checkpoint, validation.
    Returns the step's log record."""
    config, accelerator, step = run.config, run.accelerator, run.global_step
    if run.schedule.after_optimizer_step(step, accelerator):
        record_selection(run)
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


def record_selection(run: TrainingRun) -> None:
    """Write ``logs/selection.json`` (main process) after the directions were selected."""
    if run.accelerator.is_main_process:
        write_selection(run.config.output_path, run.schedule.selected_at_step, run.schedule.summaries)


def stop_if_asked(run: TrainingRun, stop: StopRequest, status: RunStatus) -> None:
    """Between optimizer steps: when a stop was asked for (on any process), save a checkpoint at the
    current step (unless one was just saved there), remove the STOP file, record "stopped" and raise
    :class:`TrainingStopped`. Every process calls this at the same point (the decision is collective)."""
    reason = stop.check(run.accelerator)
    if reason is None:
        return
    stop_run(run, stop, status, reason)


def stop_run(run: TrainingRun, stop: StopRequest, status: RunStatus, reason: str) -> NoReturn:
    """Save ``checkpoint-<step>`` if it is not the last one saved, end the run, raise :class:`TrainingStopped`."""
    config, accelerator, step = run.config, run.accelerator, run.global_step
    target = config.output_path / f"checkpoint-{step}"
    if step > 0 and (run.last_checkpoint is None or Path(run.last_checkpoint).resolve() != target.resolve()):
        state = {"selected_at_step": run.schedule.selected_at_step, "epoch": (step - 1) // run.feed.steps_per_epoch, "phase": run.schedule.phase(step)}
        run.last_checkpoint = save_checkpoint(accelerator, config.output_path, step, state, config.checkpoints_total_limit)
    saved = run.last_checkpoint if step > 0 else None
    stopped = TrainingStopped(step, saved, reason)
    if accelerator.is_main_process:
        stop.clear_stop_file()
        status.update(state="stopped")
        logger.info("stop requested (%s): %s; %s", reason, f"{saved} saved" if saved else "no step done, nothing to save", stopped)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    raise stopped


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
    """Run one DreamBooth LoRA-Dash training; returns the folder holding the exported adapter.

    Raises :class:`TrainingStopped` when the run was stopped on request (a ``STOP`` file in
    ``output_dir``, SIGTERM or a first Ctrl-C) after saving a checkpoint. ``logs/run_state.json``
    follows the run; a failure is recorded there ("failed" and the message) and re-raised."""
    status = RunStatus(config.output_path, config.max_train_steps or 0)
    with StopRequest(config.output_path) as stop:
        try:
            if status.is_main_process and stop.clear_stop_file():
                logger.info("removed a %s file left in %s before this run started", stop.stop_file.name, config.output_path)
            status.update()
            return run_training(config, stop, status)
        except TrainingStopped:
            raise
        except (Exception, KeyboardInterrupt) as error:
            interrupted = "interrupted: the last checkpoint is intact; resume with --resume_from_checkpoint latest"
            record_failure(status, interrupted if isinstance(error, KeyboardInterrupt) else one_line(error))
            raise


def record_failure(status: RunStatus, message: str) -> None:
    """Record state "failed" (a state file that cannot be written must not hide the original error)."""
    try:
        status.update(state="failed", error=message)
    except OSError:
        logger.warning("could not write %s", status.path)


def run_training(config: TrainConfig, stop: StopRequest, status: RunStatus) -> Path:
    """Set up, resume, the optimizer steps, finish (see :func:`train`)."""
    run = set_up(config)
    status.is_main_process = run.accelerator.is_main_process
    resume(run)
    status.update(step=run.global_step, total_steps=run.total_steps, phase=run.schedule.phase(max(run.global_step, 1)), selected_at_step=run.schedule.selected_at_step)
    progress = tqdm(total=run.total_steps, initial=run.global_step, desc="training", disable=not run.accelerator.is_local_main_process, dynamic_ncols=True)
    try:
        while run.global_step < run.total_steps:
            stop_if_asked(run, stop, status)
            epoch, micro_batches = run.feed.step_batches(run.global_step)
            started = time.perf_counter()
            losses = optimizer_step(run, epoch, micro_batches)
            run.global_step += 1
            record = end_of_step(run, epoch, losses, time.perf_counter() - started)
            status.update(step=run.global_step, phase=record["phase"], selected_at_step=run.schedule.selected_at_step)
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", phase=record["phase"])
    finally:
        progress.close()
    output = finish(run)
    if run.accelerator.is_main_process:
        stop.clear_stop_file()  # asked for during the last step: the run is complete anyway
    status.update(state="finished", adapter=str(output.resolve()))
    return output
