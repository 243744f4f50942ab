"""Setting a run up: the accelerator, the seeds, the models with their adapters, class images, optimizer.

Precision: the frozen UNet and text encoders are cast to the mixed-precision dtype before the adapters
are injected (adapter weights stay float32); the VAE stays float32 unless it declares itself fp16-safe
(``force_upcast`` false), and it always runs outside autocast (:func:`.sdxl.vae_encode`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.dreambooth import DreamBoothDataset, default_class_prompt
from ..errors import DashError
from ..lora_dash.config import TEXT_ENCODER_TARGET_MODULES
from ..lora_dash.inject import inject_dash, trainable_parameters
from .class_images import generate_class_images, missing_class_images
from .sdxl import SDXLComponents
from .train_config import TrainConfig

logger = logging.getLogger(__name__)
DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
#: The package each ``--report_to`` tracker needs, and how to get it.
TRACKER_PACKAGES = {"tensorboard": "pip install tensorboard", "wandb": "pip install wandb, then wandb login (or WANDB_MODE=offline)"}


def effective_learning_rate(config: TrainConfig, processes: int) -> float:
    """``--learning_rate``, times batch size x accumulation x processes with ``--scale_lr``."""
    if not config.scale_lr:
        return config.learning_rate
    return config.learning_rate * config.train_batch_size * config.gradient_accumulation_steps * processes


def process_seed(seed: int, process_index: int) -> int:
    """The seed of process ``process_index``'s noise, timesteps, latent samples and dropout.

    Derived from ``(seed, process_index)`` so that every process draws different noise (extra processes
    add noise diversity, not copies) while a run stays deterministic and exactly resumable.
    """
    return int(np.random.SeedSequence([seed, process_index]).generate_state(1)[0])


def check_tracker_installed(report_to: str) -> None:
    """A clear error before anything is loaded when the ``--report_to`` package is missing."""
    if report_to == "none":
        return
    import importlib.util

    if importlib.util.find_spec(report_to) is None:
        raise DashError(f"--report_to {report_to} needs the {report_to} package: {TRACKER_PACKAGES[report_to]}; or drop the option")


def make_accelerator(config: TrainConfig) -> Any:
    """An ``Accelerator`` with this run's precision, tracker, logging folder and DDP settings."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    check_tracker_installed(config.report_to)
    if not torch.distributed.is_initialized():
        # train() may run several times in one process (notebooks, tests): forget the previous run's
        # mixed-precision choice. A launched multi-process run keeps its process group.
        AcceleratorState._reset_state(reset_partial_state=True)
    # dash_U/dash_V are constant buffers: broadcasting them on every forward would only cost bandwidth.
    # The first CLIP encoder's last layer feeds no output (SDXL uses its penultimate states).
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False, find_unused_parameters=config.train_text_encoder)
    project = ProjectConfiguration(project_dir=config.output_dir, logging_dir=str(Path(config.output_dir) / "logs"))
    return Accelerator(
        mixed_precision=config.mixed_precision,
        log_with=None if config.report_to == "none" else config.report_to,
        project_config=project,
        kwargs_handlers=[ddp],
    )


def enable_text_encoder_checkpointing(text_encoder: nn.Module) -> None:
    """Gradient checkpointing that lets gradients reach adapters inside the checkpointed layers.

    transformers 4.x defaults to *reentrant* checkpointing, which returns no gradient to parameters
    inside a segment whose inputs (the frozen embeddings) do not require grad: the adapters would train
    nothing. Non-reentrant checkpointing has no such condition, in every transformers version.
    """
    text_encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def prepare_models(config: TrainConfig, components: SDXLComponents, device: torch.device, weight_dtype: torch.dtype) -> dict[str, nn.Module]:
    """Freeze and place the models, inject the adapters; returns the adapted models by prefix."""
    for model in (components.unet, components.vae, components.text_encoder, components.text_encoder_2):
        model.requires_grad_(False)
    vae_dtype = torch.float32 if components.vae.config.get("force_upcast", True) else weight_dtype
    for model, dtype in ((components.vae, vae_dtype), (components.unet, weight_dtype), (components.text_encoder, weight_dtype), (components.text_encoder_2, weight_dtype)):
        model.to(device) if model.dtype == dtype else model.to(device, dtype=dtype)
    unet_config = config.dash_config()
    models = {"unet": components.unet}
    inject_dash(components.unet, unet_config)
    if config.train_text_encoder:
        text_config = dataclasses.replace(unet_config, target_modules=TEXT_ENCODER_TARGET_MODULES)
        for prefix in TEXT_ENCODERS:
            inject_dash(getattr(components, prefix), text_config)
            models[prefix] = getattr(components, prefix)
    if config.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
        for prefix in TEXT_ENCODERS:
            if prefix in models:
                enable_text_encoder_checkpointing(models[prefix])
    for model in models.values():
        model.train()
    return models


def make_dataset(config: TrainConfig, with_class_images: bool) -> DreamBoothDataset:
    """The run's DreamBooth dataset (class images only once they exist)."""
    return DreamBoothDataset(
        config.instance_dir, config.instance_prompt, config.resolution, config.center_crop, config.random_flip, config.repeats,
        config.bucketing, config.bucket_step, config.seed,
        class_dir=config.class_dir if with_class_images else None, class_prompt=resolved_class_prompt(config),
        num_class_images=config.num_class_images, instance_mask_dir=config.instance_mask_dir,
    )


def resolved_class_prompt(config: TrainConfig) -> str:
    """``--class_prompt``, or ``a photo of a <class>`` with the class read from the instance folder's name."""
    return config.class_prompt or default_class_prompt(config.instance_dir)


def ensure_class_images(config: TrainConfig, components: SDXLComponents, accelerator: Any) -> None:
    """Generate missing prior-preservation images on the main process (with the run's ``--revision`` and
    ``--variant``); the others wait."""
    class_dir = Path(config.class_dir)
    if accelerator.is_main_process and missing_class_images(class_dir, config.num_class_images):
        from diffusers import StableDiffusionXLPipeline

        dtype = torch.float16 if accelerator.device.type == "cuda" else torch.float32
        pipeline = StableDiffusionXLPipeline.from_pretrained(components.model_path, dtype=dtype, revision=config.revision, variant=config.variant)
        pipeline.to(accelerator.device)
        pipeline.set_progress_bar_config(disable=True)
        generate_class_images(pipeline, class_dir, resolved_class_prompt(config), config.num_class_images, config.sample_batch_size, config.resolution, config.seed)
        del pipeline
    accelerator.wait_for_everyone()


def parameter_groups(config: TrainConfig, models: dict[str, nn.Module], processes: int) -> list[dict[str, Any]]:
    """One optimizer group for the UNet adapters and one per trained text encoder (``--text_encoder_lr``).

    Prodigy adapts one step size for all groups, so there (as in diffusers) every group gets the UNet's."""
    unet_lr = effective_learning_rate(config, processes)
    text_lr = unet_lr if config.optimizer == "prodigy" else config.text_encoder_lr
    if text_lr != config.text_encoder_lr and config.train_text_encoder:
        logger.warning("prodigy: the text encoders use --learning_rate %g, not --text_encoder_lr", unet_lr)
    groups = [{"params": trainable_parameters(models["unet"]), "lr": unet_lr}]
    for prefix in TEXT_ENCODERS:
        if prefix in models:
            groups.append({"params": trainable_parameters(models[prefix]), "lr": text_lr})
    return groups
