"""Optimizer and learning-rate schedule of the trainer."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DashError
from .train_config import TrainConfig


def make_optimizer(config: TrainConfig, param_groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """AdamW (default), 8-bit AdamW (bitsandbytes) or Prodigy (prodigyopt), with one clear error if missing."""
    betas = (config.adam_beta1, config.adam_beta2)
    common = {"betas": betas, "weight_decay": config.adam_weight_decay, "eps": config.adam_epsilon}
    if config.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=config.learning_rate, **common)
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes
        except ImportError as error:
            raise DashError("--use_8bit_adam needs bitsandbytes: pip install bitsandbytes (CUDA only), or drop the option") from error
        return bitsandbytes.optim.AdamW8bit(param_groups, lr=config.learning_rate, **common)
    try:
        import prodigyopt
    except ImportError as error:
        raise DashError("--optimizer prodigy needs prodigyopt: pip install prodigyopt, or use --optimizer adamw") from error
    return prodigyopt.Prodigy(param_groups, lr=config.learning_rate, **common)


def make_lr_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    """diffusers' named schedule, stepped once per optimizer step."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps,
        num_training_steps=total_steps,
        num_cycles=config.lr_num_cycles,
        power=config.lr_power,
    )
