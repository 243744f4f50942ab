"""SDXL pieces the trainer needs: loading the components, text conditioning, noise and the loss.

Conditioning follows the SDXL pipeline: the penultimate hidden states of both CLIP encoders are
concatenated (77 x (768 + 1280) on SDXL), the pooled projection of the second encoder is the
``text_embeds`` and the micro-conditioning ``time_ids`` are
``(original_h, original_w, crop_top, crop_left, target_h, target_w)``.

Latents: ``z = (E(x) - mean) * scaling_factor / std`` where the VAE config declares ``latents_mean`` and
``latents_std`` (as diffusers' pipelines do), else ``z = E(x) * scaling_factor``; decoding inverts it.
The VAE always runs in its own dtype with autocast switched off: a float32 VAE under fp16/bf16 autocast
would run its convolutions in half precision, the NaN / black-image path that keeping it float32 avoids.

Loss: ``|| eps_theta(x_t, t, c) - target ||^2`` with target the noise (epsilon prediction) or
``v = alpha_t eps - sigma_t x_0`` (v prediction), optionally Min-SNR weighted
(Hang et al. 2023): ``w_t = min(SNR_t, gamma) / SNR_t`` (epsilon) or ``/ (SNR_t + 1)`` (v).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DashError
from ..models.builtin import resolve_model_path


@dataclass
class SDXLComponents:
    """The models of an SDXL pipeline, loaded separately so each gets its own dtype and adapter."""

    model_path: str
    tokenizer: Any
    tokenizer_2: Any
    text_encoder: Any
    text_encoder_2: Any
    vae: Any
    unet: Any
    noise_scheduler: Any


def _offline_error(name: str, error: Exception) -> DashError:
    return DashError(
        f"cannot load model '{name}' ({type(error).__name__}): without hub access pass a local diffusers SDXL folder "
        "with --pretrained_model_name_or_path /path/to/sdxl, or use --pretrained_model_name_or_path builtin:tiny-sdxl"
    )


def load_components(name_or_path: str, vae_name_or_path: str | None = None, revision: str | None = None, variant: str | None = None) -> SDXLComponents:
    """Load tokenizers, text encoders, VAE, UNet and the DDPM training scheduler (float32, CPU)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    path = resolve_model_path(name_or_path)
    common = {"revision": revision}

    def load(cls, subfolder: str, source: str = path, **extra):
        try:
            return cls.from_pretrained(source, subfolder=subfolder, **common, **extra)
        except (OSError, ValueError, EnvironmentError) as error:
            raise _offline_error(source, error) from error

    weights = {"variant": variant} if variant else {}
    if vae_name_or_path:
        try:
            vae = AutoencoderKL.from_pretrained(resolve_model_path(vae_name_or_path), revision=revision)
        except (OSError, ValueError) as error:
            raise _offline_error(vae_name_or_path, error) from error
    else:
        vae = load(AutoencoderKL, "vae", **weights)
    return SDXLComponents(
        model_path=path,
        tokenizer=load(CLIPTokenizer, "tokenizer"),
        tokenizer_2=load(CLIPTokenizer, "tokenizer_2"),
        text_encoder=load(CLIPTextModel, "text_encoder", **weights),
        text_encoder_2=load(CLIPTextModelWithProjection, "text_encoder_2", **weights),
        vae=vae,
        unet=load(UNet2DConditionModel, "unet", **weights),
        noise_scheduler=load(DDPMScheduler, "scheduler"),
    )


def _latent_statistics(vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The VAE config's per-channel ``(latents_mean, latents_std)`` shaped (1, C, 1, 1), or None when absent."""
    mean, std = vae.config.get("latents_mean"), vae.config.get("latents_std")
    if mean is None or std is None:
        return None
    shape = (1, len(mean), 1, 1)
    return torch.tensor(mean).view(shape).to(like), torch.tensor(std).view(shape).to(like)


def scale_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Raw VAE latents -> the UNet's latent space (see the module docstring)."""
    statistics = _latent_statistics(vae, latents)
    if statistics is None:
        return latents * vae.config.scaling_factor
    mean, std = statistics
    return (latents - mean) * vae.config.scaling_factor / std


def unscale_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`scale_latents`: the UNet's latents -> what the VAE decoder takes."""
    statistics = _latent_statistics(vae, latents)
    if statistics is None:
        return latents / vae.config.scaling_factor
    mean, std = statistics
    return latents * std / vae.config.scaling_factor + mean


@torch.no_grad()
def vae_encode(vae: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent distribution ``(mean, std)`` (float32) of a (B, 3, H, W) batch in [-1, 1], computed in the
    VAE's own dtype with autocast off."""
    with torch.autocast(pixels.device.type, enabled=False):
        dist = vae.encode(pixels.to(vae.device, dtype=vae.dtype)).latent_dist
    return dist.mean.float(), dist.std.float()


@torch.no_grad()
def vae_decode(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [-1, 1] (float32) from the UNet's latents, in the VAE's dtype with autocast off."""
    with torch.autocast(latents.device.type, enabled=False):
        raw = unscale_latents(vae, latents.to(vae.device, dtype=torch.float32)).to(vae.dtype)
        return vae.decode(raw, return_dict=False)[0].float()


def tokenize(tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """(B, 77) token ids, padded and truncated to the tokenizer's maximum length."""
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids


def encode_prompts(text_encoders: list[Any], token_ids: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompt_embeds (B, 77, d1 + d2), pooled (B, d2))`` as the SDXL pipeline computes them.

    ``text_encoders`` may be wrapped for data-parallel training (DDP has no ``.device``): the token ids
    go to ``device``, and calling the wrapper is what makes DDP average the adapters' gradients."""
    hidden = []
    pooled = None
    for encoder, ids in zip(text_encoders, token_ids):
        output = encoder(ids.to(device), output_hidden_states=True)
        pooled = output[0]  # the last encoder's projection (CLIPTextModelWithProjection.text_embeds)
        hidden.append(output.hidden_states[-2])
    return torch.cat(hidden, dim=-1), pooled


def time_ids(original_sizes: torch.Tensor, crop_top_lefts: torch.Tensor, target_sizes: torch.Tensor) -> torch.Tensor:
    """(B, 6) micro-conditioning ``(orig_h, orig_w, crop_top, crop_left, target_h, target_w)``."""
    return torch.cat([original_sizes, crop_top_lefts, target_sizes], dim=1).float()


def sample_noise(latents: torch.Tensor, noise_offset: float) -> torch.Tensor:
    """Gaussian noise like ``latents``, plus ``noise_offset`` times a per-channel constant when set."""
    noise = torch.randn_like(latents)
    if noise_offset:
        noise = noise + noise_offset * torch.randn(latents.shape[0], latents.shape[1], 1, 1, device=latents.device, dtype=latents.dtype)
    return noise


def snr(noise_scheduler: Any, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``alpha_bar_t / (1 - alpha_bar_t)`` at each timestep."""
    alphas_cumprod = noise_scheduler.alphas_cumprod.to(device=timesteps.device, dtype=torch.float32)
    alpha_bar = alphas_cumprod[timesteps]
    return alpha_bar / (1.0 - alpha_bar)


def diffusion_loss(
    model_pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    noise_scheduler: Any,
    snr_gamma: float | None,
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error in float32, Min-SNR weighted per sample when ``snr_gamma`` is set.

    ``pixel_weights`` (B, 1, h, w), the loss masks on the latent grid, turn each sample's mean into the
    weighted mean ``sum_p w_p |e_p|^2 / sum_p w_p`` over its latent pixels and channels."""
    squared = F.mse_loss(model_pred.float(), target.float(), reduction="none")
    dims = tuple(range(1, model_pred.ndim))
    if pixel_weights is None:
        per_sample = squared.mean(dim=dims)
    else:
        weights = pixel_weights.float().expand_as(squared)
        per_sample = (squared * weights).sum(dim=dims) / weights.sum(dim=dims).clamp_min(1e-8)
    if snr_gamma:
        ratio = snr(noise_scheduler, timesteps)
        clipped = torch.clamp(ratio, max=snr_gamma)
        if noise_scheduler.config.prediction_type == "v_prediction":
            weights = clipped / (ratio + 1.0)
        else:
            weights = clipped / ratio
        per_sample = per_sample * weights
    return per_sample.mean()


def training_target(noise_scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The regression target for the scheduler's prediction type."""
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    raise DashError(f"prediction type '{kind}' is not supported: use a model trained with epsilon or v_prediction")
