"""Pretrain ``builtin:mini-sdxl`` on the procedural world, in three resumable stages.

    python -m dash_diffusion.models.mini.pretrain --work_dir outputs/mini-pretrain --out outputs/mini-sdxl

1. **vae**: the AutoencoderKL learns to reconstruct rendered scenes,
   ``L = |x - D(z)|_1 + |x - D(z)|^2 + lambda (|dx(x - D(z))|_1 + |dy(x - D(z))|_1) + beta KL(q(z|x) || N(0, I))``
   with ``z ~ q(z|x)``, on random 64 px crops of 128 px renders (a convolutional VAE is translation
   invariant; crops cost a quarter). The edge term (``--vae_edge_weight`` lambda; ``dx``, ``dy`` are
   differences of neighbouring pixels) charges blur where a picture changes, at the outlines and emblems
   that a per-pixel error spread over flat backgrounds barely sees. With ``--vae_hue_augment p`` each
   crop is, with probability ``p``, turned about the grey axis of RGB by a random angle
   (:func:`rotate_hue`): the world has a few dozen colours, a user's photos have any, and the VAE
   encodes both (a DreamBooth run encodes its photos with it). The rate warms up over
   ``--vae_warmup_steps`` and then follows the same half-cosine as the UNet's, down to
   ``--vae_final_lr_fraction``. Its ``scaling_factor`` is then set to ``1 / std(z)`` over fresh
   renders, as SDXL's was chosen.
2. **latents**: ``--images`` training scenes (split "train": no held-out combination, never the demo
   subject) are rendered once and encoded to their latent distributions, with their captions.
3. **unet**: the UNet and both text encoders learn the v-prediction loss
   ``w(t) |v - v_theta(sqrt(a_t) z + sqrt(1 - a_t) eps, t, c)|^2``, ``v = sqrt(a_t) eps - sqrt(1 - a_t) z``,
   with the Min-SNR weight ``w(t) = min(SNR_t, gamma) / (SNR_t + 1)`` (``--snr_gamma``), on the cached
   latents (see :data:`~.architecture.MINI_SCHEDULER_CONFIG` for why not epsilon); 10% of the
   captions are replaced by all-zero embeddings, which is what the SDXL pipeline feeds the unconditional
   branch of classifier-free guidance (``force_zeros_for_empty_prompt``), and each caption leaves out
   its colour, and independently its scene, with probability ``--caption_dropout`` (so ``a photo of a
   robot`` means a robot of any colour anywhere, as a DreamBooth class prompt needs). An exponential
   moving average of the UNet weights is what gets exported.

``--init_from FOLDER`` continues from an exported pipeline (the shipped ``weights/``, say) instead of
random weights: its VAE, scaling factor and text encoders are kept (stage 1 is skipped), the latents are
encoded with that VAE and the UNet stage starts from its weights with a fresh optimizer, for
``--unet_steps`` more steps (a UNet of an older layout first grows the transformer blocks it lacks,
which start as the identity: :mod:`.grow`). With ``--init_parts vae`` only the VAE (and its scaling
factor) comes from the folder and the UNet and text encoders start from random weights: a new UNet on a
trained VAE, which saves stage 1. With ``--init_parts text_unet`` it is the other way round: a new VAE is
trained (stage 1) and the UNet and text encoders start from the folder's, which already place objects,
colours and scenes where the captions say, and learn the new latent space from there.
``--final_lr_fraction`` below 1 lowers the UNet's learning rate on a half-cosine after warm-up,
``lr(k) = lr * (f + (1 - f) (1 + cos(pi k / K)) / 2)``, to end a run on sharper weights than a constant
rate leaves. ``--class_weights robot=3`` draws the UNet's batches with each cached scene weighted by its
class (unnamed classes weigh 1), ``P(i) = w(class_i) / sum_j w(class_j)``: more steps on the class whose
drawing has the most parts, without re-rendering the cache. ``--low_noise_share p --low_noise_max T``
draws each timestep from ``[0, T)`` with probability ``p`` and from all of ``[0, 1000)`` otherwise: more of
the steps where an object's fine structure (faces, emblems, arms) is denoised, which a model that
already composes its scenes needs most (``benchmarks/mini_detail.py`` measures it).

``--device`` picks where the models train: ``auto`` (the default) takes the first CUDA GPU when one is
visible, else the CPU. Every random draw (renders, noise, timesteps, caption dropout, VAE samples) is
made on the CPU from the seeded generators and then moved, so a run resumed on another device draws the
same batches, and the CPU run is what it was before the option existed. Rendering stays on the CPU (a
few milliseconds per scene); on a GPU, raise ``--unet_batch`` to keep it busy. ``--mixed_precision bf16``
runs the forward passes of both stages under bfloat16 autocast (weights, gradients, optimizer state and
losses stay float32): the tensor cores' speed on a GPU, and on a CPU with bfloat16 instructions
``benchmarks/mini_pretrain_step.py`` measures what it gains. ``no`` (the default) is float32 throughout.

Every stage saves its state atomically every ``--checkpoint_every`` steps and resumes from it when run
again with the same ``--work_dir``; the same seed gives the same model. Raising ``--vae_steps`` or
``--unet_steps`` continues the stage; the latent cache and the UNet state are kept per VAE step count,
so a VAE trained further never feeds stale latents to the UNet. ``pretraining.json`` records the
options of every invocation, the steps and time of each stage and the machine it ran on.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..world import CLASSES, COLOURS, SCENES, caption, class_prompt, render, sample_scene, vocabulary
from ..world.vocab import parse_caption
from .architecture import RESOLUTION, build_mini_sdxl_pipeline
from .cli import add_config_options, run_reporting_errors
from .devices import check_mixed_precision, forward_precision, latent_sample, resolve_device
from .grow import grow_unet
from .stage_state import load_models, load_stage, save_stage

logger = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    """Sizes and schedule of a pretraining run (defaults: about 90 minutes on a 2-core CPU)."""

    work_dir: str = "outputs/mini-pretrain"
    out: str = "outputs/mini-sdxl"
    seed: int = 0
    vae_steps: int = 1500
    vae_batch: int = 16
    vae_lr: float = 2e-4
    vae_kl_weight: float = 1e-6
    vae_edge_weight: float = 0.0
    vae_warmup_steps: int = 0
    vae_final_lr_fraction: float = 1.0
    vae_hue_augment: float = 0.0
    images: int = 12000
    unet_steps: int = 4000
    unet_batch: int = 32
    unet_lr: float = 3e-4
    warmup_steps: int = 200
    snr_gamma: float = 5.0
    ema_decay: float = 0.999
    uncond_probability: float = 0.1
    caption_dropout: float = 0.15
    checkpoint_every: int = 100
    init_from: str = ""
    init_parts: str = "all"
    final_lr_fraction: float = 1.0
    class_weights: str = ""
    low_noise_share: float = 0.0
    low_noise_max: int = 400
    device: str = "auto"
    mixed_precision: str = "no"


def to_tensor(images: list) -> torch.Tensor:
    """PIL RGB images -> (B, 3, H, W) float32 in [-1, 1]."""
    array = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def random_crops(pixels: torch.Tensor, size: int, rng: np.random.Generator) -> torch.Tensor:
    """One ``size x size`` window per image, at a position drawn from ``rng``."""
    limit = pixels.shape[-1] - size + 1
    corners = rng.integers(0, limit, size=(pixels.shape[0], 2))
    return torch.stack([image[:, y : y + size, x : x + size] for image, (y, x) in zip(pixels, corners)])


def scheduled_rate(step: int, peak: float, warmup: int, total: int, final_fraction: float) -> float:
    """Linear warm-up over ``warmup`` steps, then a half-cosine from ``peak`` down to
    ``peak * final_fraction`` at ``total``: ``lr(k) = peak (f + (1 - f) (1 + cos(pi p)) / 2)`` with
    ``p = (k - warmup) / (total - warmup)`` (constant when ``f`` is 1)."""
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    fraction = final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + np.cos(np.pi * progress))
    return peak * ramp * float(fraction)


def unet_learning_rate(step: int, config: PretrainConfig) -> float:
    """The UNet stage's rate: :func:`scheduled_rate` from ``unet_lr`` over ``unet_steps``."""
    return scheduled_rate(step, config.unet_lr, config.warmup_steps, config.unet_steps, config.final_lr_fraction)


def vae_learning_rate(step: int, config: PretrainConfig) -> float:
    """The VAE stage's rate: :func:`scheduled_rate` from ``vae_lr`` over ``vae_steps``."""
    return scheduled_rate(step, config.vae_lr, config.vae_warmup_steps, config.vae_steps, config.vae_final_lr_fraction)


def rotate_hue(pixels: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Turn each image's colours by ``angles[i]`` radians about the grey axis ``k = (1, 1, 1) / sqrt(3)``
    of RGB in [-1, 1] (Rodrigues: ``M = cos a I + sin a [k]x + (1 - cos a) k k^T``), then clip to
    [-1, 1]. Greys stay grey, brightness and saturation are kept, and hues cycle through the
    colour wheel (a third of a turn maps red to green)."""
    k = torch.full((3,), 3.0**-0.5)
    cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    cos, sin = angles.cos()[:, None, None], angles.sin()[:, None, None]
    matrices = cos * torch.eye(3) + sin * cross + (1.0 - cos) * torch.outer(k, k)
    return torch.einsum("bij,bjhw->bihw", matrices, pixels).clamp(-1.0, 1.0)


def edge_loss(reconstruction: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``|dx(r - x)|_1 + |dy(r - x)|_1``: mean absolute error of the differences between neighbouring
    pixels, across and down."""
    error = reconstruction - pixels
    return (error[..., :, 1:] - error[..., :, :-1]).abs().mean() + (error[..., 1:, :] - error[..., :-1, :]).abs().mean()


def parse_class_weights(text: str) -> dict[str, float]:
    """``"robot=3,cup=2"`` -> ``{"robot": 3.0, "cup": 2.0}``; ``ValueError`` naming the bad entry."""
    weights: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = entry.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name not in CLASSES or weight <= 0 or not np.isfinite(weight):
            raise ValueError(f"--class_weights entry {entry!r} must be <class>=<positive number> with a class of {', '.join(CLASSES)}")
        weights[name] = weight
    return weights


def batch_sampler(classes: list[str], config: PretrainConfig, rng: np.random.Generator):
    """A function drawing one batch of cache indices: uniform (the draws of runs made before
    ``--class_weights`` existed) or weighted by class, ``P(i) proportional to w(class_i)``."""
    weights = parse_class_weights(config.class_weights)
    if not weights:
        return lambda: rng.integers(0, len(classes), size=config.unet_batch)
    probabilities = np.array([weights.get(name, 1.0) for name in classes])
    probabilities /= probabilities.sum()
    return lambda: rng.choice(len(classes), size=config.unet_batch, p=probabilities)


def vae_from_folder(config: PretrainConfig) -> bool:
    """Whether the VAE comes from ``--init_from`` (else stage 1 trains one)."""
    return bool(config.init_from) and config.init_parts != "text_unet"


def stage_tag(config: PretrainConfig) -> str:
    """Names the VAE the latents and the UNet state belong to: its step count, or ``init`` when the
    VAE came from ``--init_from``."""
    return "init" if vae_from_folder(config) else f"vae{config.vae_steps}"


class StageClock:
    """Seconds a resumable stage has trained, over every invocation: the total up to its last checkpoint
    (kept in the checkpoint's ``extra``) plus the time since this invocation started. A killed invocation
    thus loses only the time since its last checkpoint, not all of it."""

    def __init__(self, extra: dict) -> None:
        self.saved = float(extra.get("seconds", 0.0))
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return self.saved + time.perf_counter() - self.started

    def extra(self) -> dict[str, float]:
        """What to store with a checkpoint."""
        return {"seconds": self.seconds()}


def train_vae(vae, config: PretrainConfig, work: Path) -> tuple[int, float]:
    """Stage 1 on the VAE's device; returns the number of steps done (all of them once complete) and the
    seconds spent on them."""
    device = vae.device
    rng = np.random.default_rng([config.seed, 1])
    torch.manual_seed(config.seed + 1)  # each stage seeds itself: a resumed run draws what a fresh one would
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=0.0)
    step, extra = load_stage(work / "vae.pt", {"vae": vae}, optimizer, rng)
    clock = StageClock(extra)
    vae.train()
    while step < config.vae_steps:
        scenes = [sample_scene(rng, "train") for _ in range(config.vae_batch)]
        pixels = random_crops(to_tensor([render(scene, RESOLUTION) for scene in scenes]), RESOLUTION // 2, rng)
        if config.vae_hue_augment:
            turned = torch.from_numpy(rng.random(len(pixels)) < config.vae_hue_augment)
            angles = torch.from_numpy(rng.uniform(0.0, 2.0 * np.pi, len(pixels))).float() * turned
            pixels = rotate_hue(pixels, angles)
        pixels = pixels.to(device)
        with forward_precision(device, config.mixed_precision):
            posterior = vae.encode(pixels).latent_dist
            posterior = type(posterior)(posterior.parameters.float())  # its KL term in float32 too
            reconstruction = vae.decode(latent_sample(posterior)).sample.float()
        loss = F.l1_loss(reconstruction, pixels) + F.mse_loss(reconstruction, pixels) + config.vae_kl_weight * posterior.kl().mean()
        if config.vae_edge_weight:
            loss = loss + config.vae_edge_weight * edge_loss(reconstruction, pixels)
        for group in optimizer.param_groups:
            group["lr"] = vae_learning_rate(step, config)  # set every step: a saved optimizer state carries its old rate
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % config.checkpoint_every == 0 or step == config.vae_steps:
            save_stage(work / "vae.pt", step, {"vae": vae}, optimizer, rng, clock.extra())
            logger.info("vae step %d/%d loss %.4f", step, config.vae_steps, loss.item())
    return step, clock.seconds()


@torch.no_grad()
def set_scaling_factor(vae, config: PretrainConfig) -> float:
    """``1 / std`` of latent samples of 64 fresh renders, written into the VAE's config."""
    rng = np.random.default_rng([config.seed, 2])
    vae.eval()
    pixels = to_tensor([render(sample_scene(rng, "train"), RESOLUTION) for _ in range(64)]).to(vae.device)
    factor = float(1.0 / latent_sample(vae.encode(pixels).latent_dist).std())
    vae.register_to_config(scaling_factor=factor)
    return factor


@torch.no_grad()
def encode_dataset(vae, config: PretrainConfig, work: Path, chunk: int = 1000) -> dict[str, torch.Tensor | list[str]]:
    """Stage 2: latent means, stds (float16) and captions of ``config.images`` scenes, cached in chunks."""
    vae.eval()
    folder = work / f"latents-{stage_tag(config)}"  # a VAE trained further makes new latents
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for start in range(0, config.images, chunk):
        path = folder / f"chunk-{start:07d}.pt"
        if not path.is_file():
            rng = np.random.default_rng([config.seed, 3, start])
            scenes = [sample_scene(rng, "train") for _ in range(min(chunk, config.images - start))]
            means, stds = [], []
            for batch in range(0, len(scenes), 50):
                distribution = vae.encode(to_tensor([render(s, RESOLUTION) for s in scenes[batch : batch + 50]]).to(vae.device)).latent_dist
                means.append(distribution.mean.half().cpu())
                stds.append(distribution.std.half().cpu())
            part = {"mean": torch.cat(means), "std": torch.cat(stds), "captions": [caption(s) for s in scenes]}
            temporary = path.with_suffix(".tmp")
            torch.save(part, temporary)
            os.replace(temporary, path)
            logger.info("encoded %d/%d scenes", start + len(scenes), config.images)
        parts.append(torch.load(path, weights_only=False))
    return {"mean": torch.cat([p["mean"] for p in parts]), "std": torch.cat([p["std"] for p in parts]), "captions": [c for p in parts for c in p["captions"]]}


def encode_text(pipeline, token_ids: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL conditioning: concatenated penultimate states of both encoders and the second's pooled projection."""
    first = pipeline.text_encoder(token_ids[0], output_hidden_states=True)
    second = pipeline.text_encoder_2(token_ids[1], output_hidden_states=True)
    return torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1), second.text_embeds


def size_time_ids(device: torch.device) -> torch.Tensor:
    """SDXL's ``time_ids`` for the world's pictures, ``(1, 6)``: original size, crop corner (0, 0) and target
    size, all :data:`RESOLUTION` square; expand to the batch."""
    return torch.tensor([[RESOLUTION, RESOLUTION, 0, 0, RESOLUTION, RESOLUTION]], dtype=torch.float32, device=device)


def train_unet(pipeline, ema_unet, data: dict, config: PretrainConfig, work: Path) -> tuple[int, float]:
    """Stage 3: UNet + text encoders on the cached latents (kept on the CPU, each batch moved to the UNet's
    device); returns the steps done and the seconds spent."""
    from diffusers import DDPMScheduler

    from ...training.sdxl import diffusion_loss, training_target

    rng = np.random.default_rng([config.seed, 4])
    torch.manual_seed(config.seed + 4)
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    models = {"unet": pipeline.unet, "text_encoder": pipeline.text_encoder, "text_encoder_2": pipeline.text_encoder_2}
    params = [p for model in models.values() for p in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=1e-2)
    state_path = work / f"unet-{stage_tag(config)}.pt"  # a UNet belongs to the latents of one VAE
    step, extra = load_stage(state_path, {**models, "ema_unet": ema_unet}, optimizer, rng)
    clock = StageClock(extra)
    prompts = all_prompts()
    tokens = [tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids for tokenizer in (pipeline.tokenizer, pipeline.tokenizer_2)]
    parts = [parse_caption(text) for text in data["captions"]]
    prompt_index = {text: i for i, text in enumerate(prompts)}
    draw_batch = batch_sampler([obj for obj, _, _ in parts], config, rng)
    device = pipeline.unet.device
    tokens = [ids.to(device) for ids in tokens]
    time_ids = size_time_ids(device)
    factor = pipeline.vae.config.scaling_factor
    for model in models.values():
        model.train()
    while step < config.unet_steps:
        batch = torch.from_numpy(draw_batch())
        latents = (data["mean"][batch].float() + data["std"][batch].float() * torch.randn(config.unet_batch, *data["mean"].shape[1:])) * factor
        keep_colour, keep_scene = rng.random((2, config.unet_batch)) >= config.caption_dropout
        chosen = torch.tensor([prompt_index[class_prompt(parts[i][0], parts[i][1] if scene else None, parts[i][2] if colour else None)] for i, colour, scene in zip(batch.tolist(), keep_colour, keep_scene)]).to(device)
        keep = torch.from_numpy(rng.random(config.unet_batch) >= config.uncond_probability).float().to(device)
        noise = torch.randn_like(latents)  # on the CPU, in the layout of the cached latents, then moved
        latents, noise = latents.to(device), noise.to(device)
        timesteps = torch.from_numpy(draw_timesteps(rng, config, scheduler.config.num_train_timesteps)).to(device)
        with forward_precision(device, config.mixed_precision):
            embeds, pooled = encode_text(pipeline, (tokens[0][chosen], tokens[1][chosen]))
            embeds, pooled = embeds * keep[:, None, None], pooled * keep[:, None]
            prediction = pipeline.unet(scheduler.add_noise(latents, noise, timesteps), timesteps, encoder_hidden_states=embeds, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids.expand(config.unet_batch, -1)}).sample.float()
        loss = diffusion_loss(prediction, training_target(scheduler, latents, noise, timesteps), timesteps, scheduler, config.snr_gamma)
        for group in optimizer.param_groups:
            group["lr"] = unet_learning_rate(step, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        update_ema(ema_unet, pipeline.unet, config.ema_decay if step > config.warmup_steps else 0.0)
        if step % config.checkpoint_every == 0 or step == config.unet_steps:
            save_stage(state_path, step, {**models, "ema_unet": ema_unet}, optimizer, rng, clock.extra())
            logger.info("unet step %d/%d loss %.4f", step, config.unet_steps, loss.item())
    return step, clock.seconds()


def draw_timesteps(rng: np.random.Generator, config: PretrainConfig, total: int) -> np.ndarray:
    """One training timestep per batch item: uniform over ``[0, total)``, or with ``--low_noise_share p``
    from ``[0, low_noise_max)`` with probability ``p`` (the uniform draw alone when ``p`` is 0, so runs
    made before the option draw what they drew)."""
    uniform = rng.integers(0, total, size=config.unet_batch)
    if config.low_noise_share <= 0:
        return uniform
    low = rng.random(config.unet_batch) < config.low_noise_share
    return np.where(low, rng.integers(0, config.low_noise_max, size=config.unet_batch), uniform)


def check_low_noise(config: PretrainConfig) -> None:
    """``ValueError`` for a share outside [0, 1] or a bound outside [1, 1000]."""
    if not 0.0 <= config.low_noise_share <= 1.0:
        raise ValueError(f"--low_noise_share {config.low_noise_share} must be between 0 and 1 (0 draws every timestep uniformly)")
    if not 1 <= config.low_noise_max <= 1000:
        raise ValueError(f"--low_noise_max {config.low_noise_max} must be a timestep between 1 and 1000")


def all_prompts() -> list[str]:
    """Every caption the grammar can make, with or without its colour and its scene."""
    return [class_prompt(obj, scene, colour) for obj in CLASSES for scene in (None, *SCENES) for colour in (None, *COLOURS)]


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model``, parameter by parameter."""
    for average, current in zip(ema.parameters(), model.parameters()):
        average.lerp_(current, 1.0 - decay)


def machine(device: torch.device | None = None) -> dict[str, object]:
    """What the run ran on (and, given its device, which one it trained on)."""
    facts: dict[str, object] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if device is not None:
        facts["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return facts


def pretrain(config: PretrainConfig) -> Path:
    """Run (or resume) the three stages and write the pipeline folder ``config.out``."""
    parse_class_weights(config.class_weights)  # a typo fails now, not after the latents are encoded
    check_low_noise(config)
    check_mixed_precision(config.mixed_precision)
    device = resolve_device(config.device)
    work, started = Path(config.work_dir), time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    record_path = work / "pretraining.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"stages": {}}
    # every invocation's options, in order: a run continued with other options is reproduced by repeating them
    record["runs"] = record.get("runs", [record.pop("config")] if "config" in record else []) + [asdict(config)]
    pipeline = initial_pipeline(config)
    for model in (pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
        model.to(device)
    if config.init_from:
        record["init_from"] = {"folder": str(Path(config.init_from).absolute()), "pretraining": read_record(Path(config.init_from))}

    def timed(stage: str, run) -> None:
        """Run a stage and record its steps and seconds: the total a resumable stage reports (it counts
        killed invocations up to their last checkpoint), else this invocation's time added to earlier ones."""
        begin = time.perf_counter()
        result = run()
        entry = record["stages"].setdefault(stage, {"seconds": 0.0})
        if isinstance(result, tuple):
            entry.update(steps=result[0], seconds=result[1])
        else:
            entry.update(steps=result, seconds=entry["seconds"] + time.perf_counter() - begin)
        record_path.write_text(json.dumps({**record, "machine": machine(device)}, indent=2))

    if vae_from_folder(config):
        record["scaling_factor"] = pipeline.vae.config.scaling_factor
    else:
        timed("vae", lambda: train_vae(pipeline.vae, config, work))
        record["scaling_factor"] = set_scaling_factor(pipeline.vae, config)
    data: dict = {}
    timed("latents", lambda: len(data.update(encode_dataset(pipeline.vae, config, work)) or data["captions"]))
    ema_unet = copy.deepcopy(pipeline.unet).requires_grad_(False)
    timed("unet", lambda: train_unet(pipeline, ema_unet, data, config, work))
    pipeline.unet = ema_unet
    record["session_seconds"] = time.perf_counter() - started
    return export(pipeline, Path(config.out), {**record, "machine": machine(device)})


def initial_pipeline(config: PretrainConfig):
    """Random weights from ``config.seed``, or the float32 pipeline in ``config.init_from`` (only its VAE
    when ``config.init_parts`` is ``"vae"``; all but its VAE when it is ``"text_unet"``)."""
    if not config.init_from:
        return build_mini_sdxl_pipeline(vocabulary(), seed=config.seed)
    if config.init_parts not in INIT_PARTS:
        raise ValueError(f"--init_parts {config.init_parts!r} is not one of {', '.join(INIT_PARTS)}")
    from diffusers import StableDiffusionXLPipeline

    folder = Path(config.init_from)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"--init_from {folder} is not a diffusers pipeline folder (no model_index.json); pass an exported mini-sdxl folder")
    pipeline = StableDiffusionXLPipeline.from_pretrained(folder)
    pipeline.unet = grow_unet(pipeline.unet, seed=config.seed)  # a UNet of an older layout gains its new blocks
    for model in (pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
        model.float().requires_grad_(True)
    if config.init_parts == "all":
        return pipeline
    fresh = build_mini_sdxl_pipeline(vocabulary(), seed=config.seed)
    if config.init_parts == "vae":
        fresh.vae = pipeline.vae
        return fresh
    pipeline.vae = fresh.vae
    return pipeline


INIT_PARTS = ("all", "vae", "text_unet")
"""What ``--init_from`` takes from its folder: every model, only the VAE, or all but the VAE."""


def read_record(folder: Path) -> dict:
    """The ``pretraining.json`` of an exported folder (empty when it has none)."""
    path = folder / "pretraining.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def export(pipeline, out: Path, record: dict) -> Path:
    """Write ``pipeline`` and its ``pretraining.json`` to ``out``: into a staging folder beside it, then
    renamed into place (an existing ``out`` is replaced only once the new one is complete).

    UNet and VAE are stored in float16 (diffusers loads them as float32); the small text encoders stay
    float32, since transformers would otherwise load them in the stored dtype.
    """
    for model in (pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
        model.eval().to("cpu")
    pipeline.unet.half()
    pipeline.vae.half()
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    retired = out.with_name(f".{out.name}.old")
    try:
        pipeline.save_pretrained(staging, safe_serialization=True)
        (staging / "pretraining.json").write_text(json.dumps(record, indent=2))
        os.chmod(staging, 0o755)
        shutil.rmtree(retired, ignore_errors=True)
        if out.exists():
            os.replace(out, retired)
        os.replace(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def snapshot(config: PretrainConfig) -> Path:
    """Export what an unfinished run has saved so far (VAE and the UNet's moving average), without
    training, to look at it mid-way; ``pretraining.json`` says at which steps."""
    work = Path(config.work_dir)
    pipeline = initial_pipeline(config)
    if vae_from_folder(config):
        vae_step, factor = "init_from", pipeline.vae.config.scaling_factor
    else:
        vae_step = load_models(work / "vae.pt", {"vae": pipeline.vae})
        factor = set_scaling_factor(pipeline.vae, config)
    ema_unet = copy.deepcopy(pipeline.unet)
    models = {"unet": pipeline.unet, "text_encoder": pipeline.text_encoder, "text_encoder_2": pipeline.text_encoder_2, "ema_unet": ema_unet}
    unet_step = load_models(work / f"unet-{stage_tag(config)}.pt", models)
    pipeline.unet = ema_unet
    record = {"snapshot": {"vae_step": vae_step, "unet_step": unet_step}, "scaling_factor": factor, "machine": machine()}
    return export(pipeline, Path(config.out), record)


def main(argv: list[str] | None = None) -> int:
    """Command line: every :class:`PretrainConfig` field is an option."""
    parser = argparse.ArgumentParser(description="Pretrain builtin:mini-sdxl on the procedural world (resumable).")
    add_config_options(parser, PretrainConfig())
    parser.add_argument("--snapshot", action="store_true", help="only export what --work_dir holds so far (a look at an unfinished run)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = vars(parser.parse_args(argv))
    look = options.pop("snapshot")
    return run_reporting_errors(lambda: (snapshot if look else pretrain)(PretrainConfig(**options)), "mini-sdxl written to")


if __name__ == "__main__":
    sys.exit(main())
