"""The two-phase LoRA-Dash schedule, driven by the optimizer step.

Phase 1 ("lora", optimizer steps ``0 .. t-1``) trains plain LoRA. After optimizer step ``t`` the
training loop calls :meth:`DashSchedule.after_optimizer_step`, which selects the task-specific
directions of every adapted layer and starts phase 2 ("dash"). The phase depends on the optimizer step
alone: micro-steps of gradient accumulation, validation passes and gradient-checkpoint recomputation do
not move it (the reference code counts forward calls, so ``t = 100`` with accumulation 4 switched at
optimizer step 25). In data-parallel runs rank 0 selects and broadcasts, so every rank holds the same
``U_s``, ``V_s`` and indices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .inject import dash_layers, select_directions

logger = logging.getLogger(__name__)


def broadcast_directions(model: nn.Module, broadcast: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Overwrite every layer's direction buffers with rank 0's (``broadcast`` returns rank 0's tensor)."""
    for layer in dash_layers(model).values():
        for buffer in (layer.dash_U, layer.dash_V, layer.dash_indices, layer.dash_change_rate):
            buffer.copy_(broadcast(buffer.clone()))


def directions_fingerprint(models: dict[str, nn.Module]) -> torch.Tensor:
    """(3,) float64 summary of every layer's selected directions (index sum, sum of U_s and V_s entries)
    to compare across ranks: equal fingerprints mean the ranks agree."""
    total = torch.zeros(3, dtype=torch.float64)
    for model in models.values():
        for layer in dash_layers(model).values():
            total += torch.stack([layer.dash_indices.sum().double().cpu(), layer.dash_U.double().sum().cpu(), layer.dash_V.double().sum().cpu()])
    return total


def format_selection(summary: dict[str, dict[str, list]], limit: int = 6) -> str:
    """Human-readable summary: per layer, the chosen singular-value positions and their change rates."""
    lines = []
    for name, item in list(summary.items())[:limit]:
        pairs = ", ".join(f"{i}:{rate:.3g}" for i, rate in zip(item["indices"], item["change_rates"]))
        lines.append(f"  {name}: {pairs}")
    if len(summary) > limit:
        lines.append(f"  ... and {len(summary) - limit} more layers (all in the native adapter file)")
    return "\n".join(lines)


@dataclass
class DashSchedule:
    """Decides the phase from the optimizer step and switches the models at step ``warmup_steps``."""

    warmup_steps: int
    models: dict[str, nn.Module]
    enabled: bool = True
    selected_at_step: int | None = None
    summaries: dict[str, dict] = field(default_factory=dict)

    @property
    def switched(self) -> bool:
        """True once the directions are in place (also after resuming from a checkpoint past the switch)."""
        layers = [layer for model in self.models.values() for layer in dash_layers(model).values() if layer.num_directions]
        return bool(layers) and all(layer.directions_selected for layer in layers)

    def phase(self, optimizer_step: int) -> str:
        """The phase optimizer step ``optimizer_step`` (1-based) trains in: ``"lora"`` for steps 1..t,
        ``"dash"`` from t + 1 on (``"lora"`` throughout a ``--no_dash`` run)."""
        if not self.enabled:
            return "lora"
        return "dash" if optimizer_step > self.warmup_steps else "lora"

    @torch.no_grad()
    def after_optimizer_step(self, optimizer_step: int, accelerator: Any | None = None) -> bool:
        """Select directions once ``optimizer_step`` reaches ``warmup_steps``. Returns True when it switched now."""
        if not self.enabled or optimizer_step < self.warmup_steps or self.switched:
            return False
        device = None if accelerator is None else accelerator.device
        for prefix, model in self.models.items():
            self.summaries[prefix] = select_directions(model, device=device)
            if accelerator is not None and accelerator.num_processes > 1:
                from accelerate.utils import broadcast

                broadcast_directions(model, lambda tensor: broadcast(tensor, from_process=0))
        self.selected_at_step = optimizer_step
        if accelerator is None or accelerator.is_main_process:
            for prefix, summary in self.summaries.items():
                logger.info("LoRA-Dash: selected directions of %d %s layers at optimizer step %d (position:change rate)\n%s", len(summary), prefix, optimizer_step, format_selection(summary))
        return True
