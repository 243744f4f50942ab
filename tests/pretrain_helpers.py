"""Helpers for the mini model's pretraining tests."""

from __future__ import annotations

from dash_diffusion.models.mini.pretrain import PretrainConfig


def small(tmp_path, **overrides) -> PretrainConfig:
    """A pretraining config with tiny step counts and batches, working and exporting under ``tmp_path``."""
    options = dict(work_dir=str(tmp_path / "work"), out=str(tmp_path / "model"), vae_steps=2, vae_batch=2, images=6, unet_steps=3, unet_batch=2, warmup_steps=1, checkpoint_every=1)
    options.update(overrides)
    return PretrainConfig(**options)
