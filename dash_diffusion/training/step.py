"""One optimizer step: ``gradient_accumulation_steps`` micro-batches on every process, then the update.

The loss of a micro-batch is the diffusion loss of the instance images (Min-SNR weighted when
``--snr_gamma`` is set; with ``--instance_mask_dir`` a mean weighted by the photos' loss masks) plus ``prior_loss_weight`` times the plain, unweighted loss of the class images
(prior preservation), as diffusers computes it. Gradients are synchronised across processes only on
the last micro-batch. Before the update, :meth:`DashSchedule.before_optimizer_step` withholds
``dash_delta``'s zero gradient during pre-launch, so its optimizer state starts at the switch.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..errors import DashError
from .sdxl import diffusion_loss, sample_noise, training_target

MicroBatch = tuple[list[int], list[int] | None]  # (instance indices, class indices or None)


def micro_step_loss(run: Any, indices: list[int], epoch: int, snr_gamma: float | None) -> torch.Tensor:
    """Diffusion loss of one micro-batch (noise and timesteps drawn from this process's RNG)."""
    components, dtype = run.components, run.weight_dtype
    inputs = run.feed.inputs(indices, epoch)
    latents = inputs.latents
    noise = sample_noise(latents, run.config.noise_offset)
    steps = components.noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (latents.shape[0],), device=latents.device).long()
    noisy = components.noise_scheduler.add_noise(latents, noise, timesteps)
    prediction = run.wrapped["unet"](
        noisy.to(dtype),
        timesteps,
        encoder_hidden_states=inputs.prompt_embeds.to(dtype),
        added_cond_kwargs={"text_embeds": inputs.pooled.to(dtype), "time_ids": inputs.time_ids.to(dtype)},
        return_dict=False,
    )[0]
    target = training_target(components.noise_scheduler, latents, noise, timesteps)
    return diffusion_loss(prediction, target, timesteps, components.noise_scheduler, snr_gamma, inputs.loss_weights)


def _no_sync_unless(sync: bool, run: Any) -> contextlib.ExitStack:
    """Skip DDP's gradient all-reduce on every micro-batch but the last one of an optimizer step."""
    stack = contextlib.ExitStack()
    if not sync and run.accelerator.num_processes > 1:
        for model in run.wrapped.values():
            stack.enter_context(run.accelerator.no_sync(model))
    return stack


def optimizer_step(run: Any, epoch: int, micro_batches: list[MicroBatch]) -> list[float]:
    """Accumulate the micro-batches' gradients and update the adapters; returns each process's loss,
    averaged over the micro-batches. A non-finite loss stops the run with a one-line error."""
    config, accelerator = run.config, run.accelerator
    step_losses = torch.zeros(accelerator.num_processes, dtype=torch.float64)
    for position, (instance, class_batch) in enumerate(micro_batches):
        with _no_sync_unless(position == len(micro_batches) - 1, run):
            with accelerator.autocast():
                loss = micro_step_loss(run, instance, epoch, config.snr_gamma)
                if class_batch is not None:
                    loss = loss + config.prior_loss_weight * micro_step_loss(run, class_batch, epoch, None)
            losses = accelerator.gather(loss.detach().reshape(1))
            if not torch.isfinite(losses).all():
                where = f"; the last checkpoint {run.last_checkpoint} is intact" if run.last_checkpoint else ""
                raise DashError(f"loss became {losses.tolist()} at optimizer step {run.global_step + 1}{where}: lower --learning_rate, use --mixed_precision bf16 or an fp16-safe VAE")
            accelerator.backward(loss / len(micro_batches))
        step_losses += losses.double().cpu() / len(micro_batches)
    run.schedule.before_optimizer_step()
    if config.max_grad_norm > 0:
        accelerator.clip_grad_norm_(run.params, config.max_grad_norm)
    run.optimizer.step()
    run.lr_scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return step_losses.tolist()
