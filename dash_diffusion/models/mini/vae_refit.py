"""Refit an exported mini-sdxl's VAE to another GroupNorm grouping without moving its latent space.

    python -m dash_diffusion.models.mini.vae_refit --init_from dash_diffusion/models/mini/weights \\
        --work_dir W --out O --steps 3000

Why: the first VAE normalised its 32-channel layers with 32 groups, one channel per group, which is
instance normalisation. It removes every channel's mean over the picture, and so the absolute colour
of large flat regions, right before the decoder's last convolution. Its reconstructions stalled at a
mean absolute error of about 0.11 (on [-1, 1] pixels): teal came back blue, and the sample robot's star
came back as an orange blot, before the UNet drew anything.

The UNet and text encoders were pretrained on that VAE's latents, so the refit keeps them, and keeps
the latents, fixed. The new VAE has :data:`~.architecture.VAE_NORM_GROUPS` groups (several channels
each). It starts from the old weights and trains two disjoint halves on the same batch of rendered
training scenes ``x``:

* the decoder reconstructs from the *old* encoder's latent samples ``z ~ q_old(z|x)`` (what the UNet
  learnt to produce), ``L_dec = |x - D(z)|_1 + |x - D(z)|^2``;
* the encoder reproduces the old posterior,
  ``L_enc = |mu_new(x) - mu_old(x)|^2 + |log var_new(x) - log var_old(x)|^2``, so photos that a
  DreamBooth run encodes land where the UNet expects them.

The scaling factor is kept. The refit halved the error (0.111 -> 0.053) but the picture stayed blurred;
the shipped weights replaced that VAE with one trained from scratch (``pretrain --init_parts text_unet``),
and the refit remains for other exported models with the same problem. Progress is saved atomically
every ``--checkpoint_every`` steps and a run resumes from ``--work_dir``; the same seed gives the same
VAE. ``pretraining.json`` of the output nests the input's record and adds a ``vae_refit`` stage with its
steps, seconds and reconstruction errors.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..world import render, sample_scene
from .architecture import RESOLUTION, VAE_NORM_GROUPS
from .cli import add_config_options, run_reporting_errors
from .pretrain import StageClock, export, machine, read_record, to_tensor
from .stage_state import load_stage, save_stage

logger = logging.getLogger(__name__)


@dataclass
class RefitConfig:
    """Options of a VAE refit (defaults: the refit of the previous shipped weights, about 50 minutes on a 2-core CPU)."""

    init_from: str = "dash_diffusion/models/mini/weights"
    work_dir: str = "outputs/mini-vae-refit"
    out: str = "outputs/mini-sdxl-refit"
    seed: int = 0
    steps: int = 3000
    batch: int = 8
    lr: float = 3e-4
    groups: int = VAE_NORM_GROUPS
    checkpoint_every: int = 100
    eval_images: int = 32


def regroup(vae: torch.nn.Module, groups: int) -> torch.nn.Module:
    """Set every GroupNorm of ``vae`` to ``groups`` groups and record it in the config. A GroupNorm's
    weights are per channel, so the same state dict fits any grouping."""
    for module in vae.modules():
        if isinstance(module, torch.nn.GroupNorm):
            if module.num_channels % groups:
                raise ValueError(f"--groups {groups} does not divide the VAE's {module.num_channels}-channel layers; choose a divisor of every width")
            module.num_groups = groups
    vae.register_to_config(norm_num_groups=groups)
    return vae


def refit_losses(old, new, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_dec, L_enc)`` of one batch of pixels in [-1, 1] (see the module docstring)."""
    with torch.no_grad():
        target = old.encode(pixels).latent_dist
        latents = target.sample()
    reconstruction = new.decode(latents).sample
    decoder_loss = F.l1_loss(reconstruction, pixels) + F.mse_loss(reconstruction, pixels)
    posterior = new.encode(pixels).latent_dist
    encoder_loss = F.mse_loss(posterior.mean, target.mean) + F.mse_loss(posterior.logvar, target.logvar)
    return decoder_loss, encoder_loss


@torch.no_grad()
def reconstruction_error(vae, pixels: torch.Tensor) -> float:
    """Mean absolute error of ``decode(mean of encode(pixels))`` on [-1, 1] pixels."""
    vae.eval()
    error = (vae.decode(vae.encode(pixels).latent_dist.mean).sample - pixels).abs().mean().item()
    return float(error)


def evaluation_pixels(config: RefitConfig) -> torch.Tensor:
    """Rendered training-split scenes the refit never trains on (their own seed)."""
    rng = np.random.default_rng([config.seed, 9])
    return to_tensor([render(sample_scene(rng, "train"), RESOLUTION) for _ in range(config.eval_images)])


def train_refit(old, new, config: RefitConfig, work: Path) -> tuple[int, float]:
    """Train ``new`` towards ``old`` (see the module docstring); returns the steps done and the seconds."""
    rng = np.random.default_rng([config.seed, 8])
    torch.manual_seed(config.seed + 8)
    optimizer = torch.optim.AdamW(new.parameters(), lr=config.lr, weight_decay=0.0)
    step, extra = load_stage(work / "vae_refit.pt", {"vae": new}, optimizer, rng)
    clock = StageClock(extra)
    new.train()
    while step < config.steps:
        pixels = to_tensor([render(sample_scene(rng, "train"), RESOLUTION) for _ in range(config.batch)])
        decoder_loss, encoder_loss = refit_losses(old, new, pixels)
        optimizer.zero_grad(set_to_none=True)
        (decoder_loss + encoder_loss).backward()
        optimizer.step()
        step += 1
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_stage(work / "vae_refit.pt", step, {"vae": new}, optimizer, rng, clock.extra())
            logger.info("vae refit step %d/%d decoder %.4f encoder %.5f", step, config.steps, decoder_loss.item(), encoder_loss.item())
    return step, clock.seconds()


def refit(config: RefitConfig) -> Path:
    """Run (or resume) the refit and write the pipeline folder ``config.out`` with the new VAE."""
    from diffusers import StableDiffusionXLPipeline

    folder = Path(config.init_from)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"--init_from {folder} is not a diffusers pipeline folder (no model_index.json); pass an exported mini-sdxl folder")
    pipeline = StableDiffusionXLPipeline.from_pretrained(folder)
    old = pipeline.vae.float().requires_grad_(False).eval()
    new = regroup(copy.deepcopy(old), config.groups).requires_grad_(True)
    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    steps, seconds = train_refit(old, new, config, work)
    pixels = evaluation_pixels(config)
    errors = {"before": reconstruction_error(old, pixels), "after": reconstruction_error(new, pixels)}
    pipeline.vae = new
    for model in (pipeline.unet, pipeline.text_encoder, pipeline.text_encoder_2):
        model.float()
    record = {
        "stages": {"vae_refit": {"steps": steps, "seconds": seconds, "groups": config.groups, "reconstruction_mae": errors}},
        "runs": [asdict(config)],
        "scaling_factor": new.config.scaling_factor,
        "init_from": {"folder": str(folder.absolute()), "pretraining": read_record(folder)},
        "machine": machine(),
    }
    logger.info("reconstruction error on %d held-back renders: %.4f -> %.4f", config.eval_images, errors["before"], errors["after"])
    return export(pipeline, Path(config.out), record)


def main(argv: list[str] | None = None) -> int:
    """Command line: every :class:`RefitConfig` field is an option."""
    parser = argparse.ArgumentParser(description="Refit builtin:mini-sdxl's VAE to another GroupNorm grouping, keeping its latent space (resumable).")
    add_config_options(parser, RefitConfig())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = vars(parser.parse_args(argv))
    return run_reporting_errors(lambda: refit(RefitConfig(**options)), "mini-sdxl with the refitted VAE written to")


if __name__ == "__main__":
    sys.exit(main())
