"""Validation images during training, generated with the adapters live in the training UNet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


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
    was_training = unet.training
    unet.eval()
    images = []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        for index in range(count):
            generator = torch.Generator(device="cpu").manual_seed(seed + index)
            images += pipeline(prompt, num_inference_steps=steps, generator=generator, height=resolution, width=resolution).images
    unet.train(was_training)
    return images


def save_validation(images: list, folder: Path, step: int, tracker: Any | None = None) -> list[Path]:
    """Save images as ``step-000100-0.png`` ... and log them to TensorBoard when a tracker is given."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"step-{step:06d}-{index}.png"
        image.save(path, format="PNG")
        paths.append(path)
    if tracker is not None and images:
        stacked = np.stack([np.asarray(image) for image in images])
        tracker.writer.add_images("validation", stacked, step, dataformats="NHWC")
    return paths
