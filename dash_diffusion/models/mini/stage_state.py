"""Resumable state of one pretraining stage: models, optimizer, step, RNG, written atomically.

A stage saves ``<work_dir>/<stage>.pt`` every ``checkpoint_every`` steps through a temporary file and a
rename, so a process killed at any moment leaves the previous complete state; ``load`` restores the
models, the optimizer, the step count and the torch and numpy random states, so a resumed stage draws
exactly what an uninterrupted one would have drawn.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def save_stage(path: Path, step: int, models: dict[str, nn.Module], optimizer: torch.optim.Optimizer, rng: np.random.Generator, extra: dict[str, Any] | None = None) -> None:
    """Write the stage's state to ``path`` atomically."""
    state = {
        "step": step,
        "models": {name: model.state_dict() for name, model in models.items()},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state,
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_stage(path: Path, models: dict[str, nn.Module], optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> tuple[int, dict[str, Any]]:
    """Restore a saved stage into ``models``, ``optimizer`` and ``rng``; returns ``(step, extra)``
    (``(0, {})`` when there is no saved state yet)."""
    if not path.is_file():
        return 0, {}
    state = torch.load(path, map_location="cpu", weights_only=False)
    for name, model in models.items():
        model.load_state_dict(state["models"][name])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"]), state["extra"]


def load_models(path: Path, models: dict[str, nn.Module]) -> int:
    """Only the models of a saved stage (to look at an unfinished run); returns the step it was saved at.
    ``FileNotFoundError`` names the file when there is none."""
    if not path.is_file():
        raise FileNotFoundError(f"no saved stage at {path}; that stage has not reached its first checkpoint yet")
    state = torch.load(path, map_location="cpu", weights_only=False)
    for name, model in models.items():
        model.load_state_dict(state["models"][name])
    return int(state["step"])
