"""Where and how the mini model's pretraining runs: ``--device``, ``--mixed_precision`` and
device-independent random draws.

Every random number of a pretraining run comes from the CPU's seeded generators and is then moved to the
training device, so a run gives the same batches on a CPU and on a GPU, and a run resumed on another
device continues the draws it would have made.
"""

from __future__ import annotations

import contextlib

import torch

MIXED_PRECISION = ("no", "bf16")
"""``--mixed_precision`` values: float32 throughout, or the forward passes under bfloat16 autocast."""


def resolve_device(name: str) -> torch.device:
    """``--device``: ``auto`` is ``cuda`` when a CUDA GPU is visible, else ``cpu``; anything else must be a
    torch device this machine has (``ValueError`` saying what to pass instead)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a torch device; pass auto, cpu or cuda[:index]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asks for a CUDA GPU but torch sees none here; pass --device cpu (or auto)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r} is not supported; pass auto, cpu or cuda[:index]")
    return device


def latent_sample(distribution) -> torch.Tensor:
    """``z = mean + std * eps`` with ``eps`` drawn by torch's CPU generator whatever the device (the draw
    ``DiagonalGaussianDistribution.sample()`` makes on a CPU), so runs on different devices see the same noise."""
    return distribution.mean + distribution.std * torch.randn(distribution.mean.shape).to(distribution.mean.device)


def check_mixed_precision(name: str) -> None:
    """``ValueError`` naming the accepted values when ``name`` is not one of :data:`MIXED_PRECISION`."""
    if name not in MIXED_PRECISION:
        raise ValueError(f"--mixed_precision {name!r} is not supported; pass {' or '.join(MIXED_PRECISION)}")


def forward_precision(device: torch.device, mixed_precision: str) -> contextlib.AbstractContextManager:
    """The context for a training step's forward pass: ``torch.autocast`` to bfloat16 on ``device`` for
    ``bf16`` (matrix products and convolutions in bfloat16, reductions and norms in float32), nothing for
    ``no``. The weights, their gradients and the optimizer state stay float32 either way, and callers take
    the loss of ``prediction.float()``."""
    check_mixed_precision(mixed_precision)
    if mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
