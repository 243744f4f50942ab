"""The two-phase LoRA-Dash schedule, driven by the optimizer step.

Phase 1 ("lora", optimizer steps ``1 .. t``) trains plain LoRA. After optimizer step ``t`` the
training loop calls :meth:`DashSchedule.after_optimizer_step`, which selects the task-specific
directions of every adapted layer and starts phase 2 ("dash"). Before every optimizer step (after
backward, before clipping) it calls :meth:`DashSchedule.before_optimizer_step`, which keeps
``dash_delta`` out of the optimizer during phase 1, so its optimizer state starts at the switch.
The phase depends on the optimizer step alone: micro-steps of gradient accumulation, validation
passes and gradient-checkpoint recomputation do not move it (the reference code counts forward
calls, so ``t = 100`` with accumulation 4 switched at optimizer step 25). In data-parallel runs the SVD work is split: each process selects the directions
of its share of the layers (the LoRA factors are identical on every process) and broadcasts them, so
the switch takes about 1/N of the time and every process ends with the same ``U_s``, ``V_s`` and
indices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .inject import dash_layers, select_directions
from .layer import DashLayer

logger = logging.getLogger(__name__)


def direction_owners(model: nn.Module, world_size: int) -> dict[str, int]:
    """Which process selects each layer's directions: round robin over the layers sorted by weight shape,
    so every process gets about the same number of SVDs of each size (the switch's cost)."""
    layers = {name: layer for name, layer in dash_layers(model).items() if layer.num_directions > 0}
    by_shape = sorted(layers, key=lambda name: tuple(layers[name].weight_matrix().shape))  # stable: module order within a shape
    return {name: position % world_size for position, name in enumerate(by_shape)}


def broadcast_directions(model: nn.Module, owners: dict[str, int], broadcast: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Give every process the directions each layer's owner selected.

    ``broadcast(tensor, owner)`` returns the owner's tensor (a collective: every process calls it for
    every layer, in the same order). A layer's four buffers travel as one float64 vector: ``U_s`` and
    ``V_s`` are float32 and the indices are small integers, both exact in float64.
    """
    layers = dash_layers(model)
    for name, owner in owners.items():
        layer = layers[name]
        buffers = (layer.dash_U, layer.dash_V, layer.dash_indices, layer.dash_change_rate)
        packed = broadcast(torch.cat([buffer.detach().reshape(-1).double() for buffer in buffers]), owner)
        for buffer, chunk in zip(buffers, packed.split([buffer.numel() for buffer in buffers])):
            buffer.copy_(chunk.reshape(buffer.shape).to(buffer.dtype))


def selection_summary(model: nn.Module) -> dict[str, dict[str, list]]:
    """Per layer with directions: the chosen singular-value positions and their change rates."""
    summary = {}
    for name, layer in dash_layers(model).items():
        if layer.num_directions > 0:
            used = layer.dash_indices[layer.dash_indices >= 0]
            summary[name] = {"indices": used.tolist(), "change_rates": layer.dash_change_rate[used].tolist()}
    return summary


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
    _switched: bool = field(default=False, init=False, repr=False)

    def _dash_layers(self) -> list[DashLayer]:
        """Every LoRA-Dash layer of every model, in model then module order."""
        return [layer for model in self.models.values() for layer in dash_layers(model).values()]

    @property
    def switched(self) -> bool:
        """True once the directions are in place (also after resuming from a checkpoint past the switch).

        The schedule installs every layer's directions at once, so one layer with directions means all
        are in place; a layer whose weight has no usable direction (``W = 0``) keeps index -1 for good,
        so "every layer selected" would never become true and the schedule would select again on every
        later step. Directions are never removed during training, so a True answer is remembered:
        checking reads one small buffer per layer."""
        if not self._switched:
            self._switched = any(layer.directions_selected for layer in self._dash_layers() if layer.num_directions)
        return self._switched

    def phase(self, optimizer_step: int) -> str:
        """The phase optimizer step ``optimizer_step`` (1-based) trains in: ``"lora"`` for steps 1..t,
        ``"dash"`` from t + 1 on (``"lora"`` throughout a ``--no_dash`` run)."""
        if not self.enabled:
            return "lora"
        return "dash" if optimizer_step > self.warmup_steps else "lora"

    def before_optimizer_step(self) -> None:
        """Keep ``dash_delta`` out of the optimizer until the directions are selected.

        Call after backward and before gradient clipping and ``optimizer.step()``, on every optimizer
        step. While the directions are not selected it sets ``.grad = None`` on every layer's
        ``dash_delta`` (its gradient is exactly zero then, since ``U_s = V_s = 0``); from the switch on
        it does nothing.

        Why: in the paper's code ``delta`` has no gradient before the switch, so an Adam optimizer's
        state for it (step count ``k``, moments) starts at the switch. A zero gradient is not the same:
        AdamW still counts the step, so after ``t`` pre-launch steps its bias corrections
        ``1 - beta1^k`` and ``1 - beta2^k`` start at ``k = t + 1`` instead of 1: with ``t = 100`` the
        second-moment correction is ~10x too small and ``delta`` moves 1.4-1.9x as far over its first
        ten or so dash steps. torch's Adam/AdamW, bitsandbytes'
        8-bit optimizers and prodigyopt's Prodigy skip a parameter whose ``grad`` is None: no state is
        created, no step counted, no weight decay applied.

        ``requires_grad`` stays True: DDP registers only the parameters that require grad when it is
        constructed (step 0), and ``delta`` must be among them for the dash phase.
        """
        if not self.switched:
            for layer in self._dash_layers():
                layer.dash_delta.grad = None

    @torch.no_grad()
    def after_optimizer_step(self, optimizer_step: int, accelerator: Any | None = None) -> bool:
        """Select directions once ``optimizer_step`` reaches ``warmup_steps``. Returns True when it switched now."""
        if not self.enabled or optimizer_step < self.warmup_steps or self.switched:
            return False
        device = None if accelerator is None else accelerator.device
        world_size = 1 if accelerator is None else accelerator.num_processes
        for prefix, model in self.models.items():
            if world_size == 1:
                select_directions(model, device=device)
            else:
                from accelerate.utils import broadcast

                owners = direction_owners(model, world_size)
                mine = {name for name, owner in owners.items() if owner == accelerator.process_index}
                select_directions(model, device=device, names=mine)
                broadcast_directions(model, owners, lambda tensor, owner: broadcast(tensor, from_process=owner))
            self.summaries[prefix] = selection_summary(model)
        self.selected_at_step = optimizer_step
        self._switched = True  # even if no layer had a usable direction: select once, never again
        if accelerator is None or accelerator.is_main_process:
            for prefix, summary in self.summaries.items():
                logger.info("LoRA-Dash: selected directions of %d %s layers at optimizer step %d (position:change rate)\n%s", len(summary), prefix, optimizer_step, format_selection(summary))
        return True
