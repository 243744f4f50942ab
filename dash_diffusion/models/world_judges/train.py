"""Train the world judges: ``python -m dash_diffusion.models.world_judges.train --out judges.safetensors``.

The pictures come from a :class:`~.pool.PairPool` of rendered pairs (two views of one instance,
:func:`~.examples.draw_pair`) that is filled first and then renewed by ``refresh`` fresh pairs per
step; each batch is ``batch // 2`` pairs of the pool, ``look_alikes`` of them as couples of instances
of one class and colour that differ only in shape (:meth:`~.pool.PairPool.choose_slots`), distorted by
:func:`~.augment.augment`. The loss
is the sum of every head's cross-entropy over the pictures the head applies to
(:func:`~.losses.head_losses`) and of the supervised contrastive loss of the instance embedding
(:func:`~.losses.instance_contrast`, the two views of a pair and equal instances are positives).
AdamW, linear warm-up, cosine decay. Everything random comes from ``seed`` (numpy for the scenes and
the pool, one torch generator for the augmentations, the torch seed for the initial weights) and torch
runs on a fixed number of threads, so the same seed and options give the same weights.

The weights are written atomically as safetensors; the header metadata holds ``format``, the label
lists (``labels``, JSON), ``embed_dim``, ``steps``, ``batch``, ``pool``, ``refresh``, ``seed``,
``look_alikes``, ``threads`` and ``seconds`` (the training's wall time).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ...formats.safetensors_io import atomic_save
from .augment import augment
from .labels import LABELS, head_sizes
from .losses import balancing_weights, head_losses, instance_contrast
from .network import EMBED_DIM, FORMAT, JudgeNet
from .pool import PairPool

STEPS = 5400
BATCH = 32
POOL = 2000
REFRESH = 2
LR = 3e-3
WARMUP = 60
WEIGHT_DECAY = 1e-4
CONTRAST_WEIGHT = 1.0
LOOK_ALIKES = 0.5


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over :data:`WARMUP` steps, then cosine decay to 2% of ``peak``."""
    if step < WARMUP:
        return peak * (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, steps - WARMUP)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def train(
    steps: int = STEPS,
    batch: int = BATCH,
    seed: int = 0,
    lr: float = LR,
    pool_size: int = POOL,
    refresh: int = REFRESH,
    threads: int = 1,
    look_alikes: float = LOOK_ALIKES,
    log_every: int = 100,
) -> tuple[JudgeNet, dict[str, str]]:
    """Train a :class:`~.network.JudgeNet` from scratch; returns it (in eval mode) and the file metadata."""
    if batch < 2 or batch % 2 or batch // 2 > pool_size:
        raise ValueError(f"batch {batch} must be even, at least 2 and at most twice the pool ({pool_size} pairs)")
    if not 0.0 <= look_alikes <= 1.0:
        raise ValueError(f"look_alikes {look_alikes} must be a share of the batch between 0 and 1")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    model = JudgeNet(head_sizes(LABELS), EMBED_DIM).to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}], lr=lr)
    start = time.perf_counter()
    pool = PairPool(pool_size, rng)
    if log_every:
        print(f"pool of {pool_size} pairs drawn in {time.perf_counter() - start:.0f}s", flush=True)
    weights = balancing_weights()
    model.train()
    running: dict[str, float] = {}
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, steps, lr)
        pool.refresh(refresh, rng)
        images, labels, instances = pool.sample(batch // 2, rng, look_alikes)
        out = model(augment(images, generator).contiguous(memory_format=torch.channels_last))
        losses = head_losses(out, labels, weights)
        losses["instance"] = CONTRAST_WEIGHT * instance_contrast(out["embedding"], instances)
        optimiser.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimiser.step()
        for name, value in losses.items():
            running[name] = running.get(name, 0.0) + float(value.detach())
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            parts = " ".join(f"{name}={value / log_every:.3f}" for name, value in running.items())
            print(f"step {step + 1}/{steps} {time.perf_counter() - start:.0f}s {parts}", flush=True)
            running = {}
    seconds = time.perf_counter() - start
    model = model.to(memory_format=torch.contiguous_format).eval()
    metadata = {
        "format": FORMAT,
        "labels": json.dumps(LABELS),
        "embed_dim": str(EMBED_DIM),
        "steps": str(steps),
        "batch": str(batch),
        "pool": str(pool_size),
        "refresh": str(refresh),
        "look_alikes": str(look_alikes),
        "seed": str(seed),
        "threads": str(threads),
        "seconds": f"{seconds:.1f}",
    }
    return model, metadata


def save(model: JudgeNet, metadata: dict[str, str], path: str | Path) -> Path:
    """Write ``model``'s weights (contiguous float32) and ``metadata`` to ``path`` atomically."""
    return atomic_save({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, path, metadata)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the weights (.safetensors)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--pool", type=int, default=POOL, help="rendered pairs kept for replay")
    parser.add_argument("--refresh", type=int, default=REFRESH, help="pairs of the pool redrawn each step")
    parser.add_argument("--look_alikes", type=float, default=LOOK_ALIKES, help="share of each batch drawn as same-class, same-colour couples")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the result depends on it)")
    args = parser.parse_args(argv)
    model, metadata = train(args.steps, args.batch, args.seed, args.lr, args.pool, args.refresh, args.threads, args.look_alikes)
    path = save(model, metadata, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {metadata['seconds']} s")


if __name__ == "__main__":
    main()
