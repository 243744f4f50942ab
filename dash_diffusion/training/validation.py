"""Validation images during training, generated with the adapters live in the training models.

The UNet, the text encoders and their adapters run in eval mode (no dropout) and, under mixed
precision, inside autocast as in training; the pipeline stops at the latents and the VAE decodes them
in its own dtype with autocast off (:func:`.sdxl.vae_decode`), never in half precision by accident.
The training RNG is left untouched.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .sdxl import vae_decode


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode for the block, then give each its own mode back."""
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)


@torch.no_grad()
def render_validation(components: Any, unet: Any, prompt: str, count: int, steps: int, resolution: int, seed: int, device: torch.device, autocast_dtype: torch.dtype | None) -> list:
    """``count`` PIL images of ``prompt`` (seeds ``seed .. seed + count - 1``), leaving the training RNG untouched."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    pipeline = StableDiffusionXLPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        text_encoder_2=components.text_encoder_2,
        tokenizer=components.tokenizer,
        tokenizer_2=components.tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(components.noise_scheduler.config),
    )
    pipeline.set_progress_bar_config(disable=True)
    images = []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), eval_mode(unet, components.text_encoder, components.text_encoder_2):
        for index in range(count):
            generator = torch.Generator(device="cpu").manual_seed(seed + index)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                latents = pipeline(prompt, num_inference_steps=steps, generator=generator, height=resolution, width=resolution, output_type="latent").images
            images += pipeline.image_processor.postprocess(vae_decode(components.vae, latents), output_type="pil")
    return images


def save_validation(images: list, folder: Path, step: int, trackers: list[Any] = ()) -> list[Path]:
    """Save images as ``step-000100-0.png`` ... and log them to each TensorBoard or W&B tracker given."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"step-{step:06d}-{index}.png"
        image.save(path, format="PNG")
        paths.append(path)
    for tracker in trackers:
        if images and tracker.name == "tensorboard":
            tracker.writer.add_images("validation", np.stack([np.asarray(image) for image in images]), step, dataformats="NHWC")
        elif images and tracker.name == "wandb":
            import wandb

            tracker.log({"validation": [wandb.Image(image, caption=f"step {step}") for image in images]}, step=step)
    return paths
