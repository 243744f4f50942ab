"""Turn the DreamBooth dataset into model inputs, one optimizer step at a time.

Data order is a pure function of ``(seed, epoch)``: the bucket sampler's batches for the epoch are
padded by cycling to a multiple of ``processes x accumulation`` and dealt round-robin to the processes,
so every optimizer step sees exactly ``gradient_accumulation_steps`` micro-batches on every process and
a resumed run continues with the very batches an uninterrupted run would have used.

With frozen text encoders the VAE latent distributions (of the unflipped and, with ``random_flip``,
the flipped image) and the prompt embeddings are computed once and cached; latents are sampled from the
cached distribution at each step, as the uncached path does.

With prior preservation an epoch has ``max(instance batches, class batches)`` micro-batch pairs (the
shorter list cycles, as diffusers pairs them), so every class image is seen once per epoch even when
there are more class images than instance images.

Trained text encoders are called through ``text_encoders`` (the data-parallel wrappers when several
processes train): calling the unwrapped modules would bypass DDP and leave each process with its own
text-encoder adapters.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..data.buckets import BucketBatchSampler
from ..data.dreambooth import DreamBoothDataset, flip_example
from ..data.masks import latent_weights
from .sdxl import encode_prompts, scale_latents, time_ids, tokenize, vae_encode


@dataclass
class StepInputs:
    """UNet inputs of one micro-batch."""

    latents: torch.Tensor  # (B, 4, h, w) scaled latents
    prompt_embeds: torch.Tensor  # (B, 77, d1 + d2)
    pooled: torch.Tensor  # (B, d2)
    time_ids: torch.Tensor  # (B, 6)
    loss_weights: torch.Tensor | None = None  # (B, 1, h, w) from the loss masks (ones for images without one); None without masks


def deal(batches: list[list[int]], processes: int, per_process_multiple: int, rank: int) -> list[list[int]]:
    """This process's share of ``batches``: padded by cycling so each process gets the same number
    (a multiple of ``per_process_multiple``), then dealt round-robin."""
    per_process = math.ceil(len(batches) / processes)
    per_process = math.ceil(per_process / per_process_multiple) * per_process_multiple
    padded = [batches[i % len(batches)] for i in range(per_process * processes)]
    return padded[rank::processes]


class TrainingFeed:
    """Per-epoch micro-batches of instance (and class) examples and their encoded inputs."""

    def __init__(self, dataset: DreamBoothDataset, components: Any, batch_size: int, accumulation: int, processes: int, rank: int, seed: int, device: torch.device, cache: bool, train_text_encoder: bool, text_encoders: tuple[Any, Any] | None = None):
        self.dataset = dataset
        self.components = components
        self.text_encoders = text_encoders or (components.text_encoder, components.text_encoder_2)
        self.accumulation = accumulation
        self.processes = processes
        self.rank = rank
        self.device = device
        self.train_text_encoder = train_text_encoder
        sizes = dataset.target_sizes
        instance = list(range(dataset.instance_len))
        self.instance_sampler = BucketBatchSampler([sizes[i] for i in instance], batch_size, seed=seed)
        self.class_sampler = None
        if dataset.class_len:
            class_keys = [sizes[dataset.instance_len + i] for i in range(dataset.class_len)]
            self.class_sampler = BucketBatchSampler(class_keys, batch_size, seed=seed + 1)
        self.cache = cache and not train_text_encoder
        self._latent_cache: dict[tuple[int, bool], torch.Tensor] = {}
        self._prompt_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._epoch_batches: tuple[int, list] = (-1, [])

    # ------------------------------------------------------------------ order
    @functools.cached_property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (the same for every epoch: only the order changes)."""
        return len(self.micro_batches(0)) // self.accumulation

    def micro_batches(self, epoch: int) -> list[tuple[list[int], list[int] | None]]:
        """This process's ``(instance indices, class indices or None)`` micro-batches of ``epoch``."""
        instance = self.instance_sampler.batches(epoch)
        if self.class_sampler is None:
            return [(batch, None) for batch in deal(instance, self.processes, self.accumulation, self.rank)]
        offset = self.dataset.instance_len
        classes = [[offset + i for i in batch] for batch in self.class_sampler.batches(epoch)]
        count = max(len(instance), len(classes))
        pairs = [(instance[k % len(instance)], classes[k % len(classes)]) for k in range(count)]
        return deal(pairs, self.processes, self.accumulation, self.rank)

    def step_batches(self, completed_steps: int) -> tuple[int, list[tuple[list[int], list[int] | None]]]:
        """``(epoch, micro-batches)`` of the optimizer step after ``completed_steps`` steps (the epoch's
        order is computed once and kept while its steps run)."""
        epoch, step_in_epoch = divmod(completed_steps, self.steps_per_epoch)
        if self._epoch_batches[0] != epoch:
            self._epoch_batches = (epoch, self.micro_batches(epoch))
        start = step_in_epoch * self.accumulation
        return epoch, self._epoch_batches[1][start : start + self.accumulation]

    # ------------------------------------------------------------------ encoding
    def _example(self, index: int, flip: bool) -> tuple[torch.Tensor, str, torch.Tensor]:
        """Pixels (3, H, W) in [-1, 1], prompt and the (6,) time ids of one example."""
        item = self.dataset[index]
        pixels, crop = item["pixel_values"], tuple(item["crop_top_left"])
        if flip:
            pixels, crop = flip_example(pixels, crop, item["original_size"], item["target_size"])
        ids = time_ids(torch.tensor([item["original_size"]]), torch.tensor([crop]), torch.tensor([item["target_size"]]))[0]
        return pixels, item["prompt"], ids

    def _encode_pixels(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VAE latent distribution ``(mean, std)`` of a (B, 3, H, W) batch (VAE dtype, autocast off)."""
        return vae_encode(self.components.vae, pixels.to(self.device))

    def _sample_latents(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return scale_latents(self.components.vae, mean + std * torch.randn_like(mean))

    def _encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.components
        ids = [tokenize(c.tokenizer, prompts), tokenize(c.tokenizer_2, prompts)]
        return encode_prompts(list(self.text_encoders), ids, self.device)

    def _cached_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        for prompt in prompts:
            if prompt not in self._prompt_cache:
                with torch.no_grad():
                    embeds, pooled = self._encode_text([prompt])
                self._prompt_cache[prompt] = (embeds[0], pooled[0])
        return torch.stack([self._prompt_cache[p][0] for p in prompts]), torch.stack([self._prompt_cache[p][1] for p in prompts])

    def _cached_latents(self, index: int, flip: bool) -> torch.Tensor:
        key = (self.dataset.example_id(index), flip)
        if key not in self._latent_cache:
            pixels, _, _ = self._example(index, flip)
            mean, std = self._encode_pixels(pixels[None])
            self._latent_cache[key] = torch.stack([mean[0], std[0]])
        return self._latent_cache[key]

    def warm_cache(self) -> None:
        """Encode every example (both flips when flipping) and prompt now, before training starts."""
        if not self.cache:
            return
        flips = (False, True) if self.dataset.random_flip else (False,)
        for index in range(len(self.dataset)):
            for flip in flips:
                self._cached_latents(index, flip)
            self._cached_text([self.dataset[index]["prompt"]])

    def inputs(self, indices: list[int], epoch: int) -> StepInputs:
        """Encoded inputs of one micro-batch; latents are freshly sampled (consumes the global RNG)."""
        flips = [self.dataset.flip_for(i, epoch) for i in indices]
        examples = [self._example(i, f) for i, f in zip(indices, flips)] if not self.cache else None
        prompts = [self.dataset[i]["prompt"] for i in indices] if self.cache else [e[1] for e in examples]
        if self.cache:
            stats = torch.stack([self._cached_latents(i, f) for i, f in zip(indices, flips)])
            latents = self._sample_latents(stats[:, 0], stats[:, 1])
            embeds, pooled = self._cached_text(prompts)
            ids = torch.stack([self._example_time_ids(i, f) for i, f in zip(indices, flips)])
        else:
            pixels = torch.stack([e[0] for e in examples])
            latents = self._sample_latents(*self._encode_pixels(pixels))
            with torch.set_grad_enabled(self.train_text_encoder):
                embeds, pooled = self._encode_text(prompts)
            ids = torch.stack([e[2] for e in examples])
        weights = self._loss_weights(indices, flips, tuple(latents.shape[-2:]))
        return StepInputs(latents=latents, prompt_embeds=embeds, pooled=pooled, time_ids=ids.to(self.device), loss_weights=weights)

    def _loss_weights(self, indices: list[int], flips: list[bool], latent_size: tuple[int, int]) -> torch.Tensor | None:
        """Per-latent-pixel loss weights of a micro-batch from the instance images' masks, flipped as their
        latents are; None when the dataset has no masks (class images weigh 1 everywhere)."""
        if self.dataset.instance_mask_dir is None:
            return None
        rows = []
        for index, flip in zip(indices, flips):
            mask = self.dataset.examples[self.dataset.example_id(index)].loss_mask
            weights = torch.ones(1, *latent_size) if mask is None else latent_weights(mask, latent_size)
            rows.append(torch.flip(weights, dims=(-1,)) if flip else weights)
        return torch.stack(rows).to(self.device)

    def _example_time_ids(self, index: int, flip: bool) -> torch.Tensor:
        return self._example(index, flip)[2]
