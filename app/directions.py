"""What an adapter is and which task-specific directions it chose, from its files alone.

The metadata comes from the ``lora_dash`` header entry of the LoRA file; the directions from the
native ``dash_adapter.safetensors`` beside it: per adapted layer, the change rate of every core
direction (``dash_change_rate``, singular-value positions in descending order of sigma) and the s
positions selected at step t (``dash_indices``, -1 where unused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from dash_diffusion.formats.native import read_native_adapter

from .library import AdapterEntry

TABLE_HEADERS = ["layer", "W (out × in)", "selected positions", "their change rates", "mean rate of the others", "learned scales δ"]


@dataclass
class LayerDirections:
    """One adapted layer: all change rates, the selected positions and their learned scales."""

    name: str  # "<component>.<module path>"
    shape: tuple[int, int]
    rates: np.ndarray  # float, min(out, in) values
    selected: list[int]  # positions, in the order they were chosen
    delta: np.ndarray  # learned scale of each selected direction


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_directions(entry: AdapterEntry) -> list[LayerDirections]:
    """The layers of the adapter's native file in model order; empty when it has none."""
    native = entry.native_file
    if native is None:
        return []
    adapter = read_native_adapter(native)
    layers = []
    for prefix, modules in adapter.modules.items():
        for module, tensors in modules.items():
            indices = tensors["dash_indices"].long().tolist()
            used = [i for i, position in enumerate(indices) if position >= 0]
            delta = tensors["dash_delta"].float().numpy()
            layers.append(
                LayerDirections(
                    name=f"{prefix}.{module}",
                    shape=(int(tensors["dash_U"].shape[0]), int(tensors["dash_V"].shape[0])),
                    rates=tensors["dash_change_rate"].float().numpy(),
                    selected=[indices[i] for i in used],
                    delta=delta[used] if delta.shape[0] == len(indices) else delta,
                )
            )
    return sorted(layers, key=lambda layer: _natural_key(layer.name))


def _rates(values: Any) -> str:
    return ", ".join(f"{float(v):.3g}" for v in values)


def directions_table(layers: list[LayerDirections]) -> list[list[Any]]:
    """One row per layer, columns :data:`TABLE_HEADERS`."""
    rows = []
    for layer in layers:
        chosen = [p for p in layer.selected if 0 <= p < layer.rates.shape[0]]
        others = np.delete(layer.rates, chosen) if chosen else layer.rates
        rows.append([
            layer.name,
            f"{layer.shape[0]} × {layer.shape[1]}",
            ", ".join(str(p) for p in layer.selected) or "none",
            _rates(layer.rates[chosen]) if chosen else "",
            f"{float(others.mean()):.3g}" if others.size else "",
            _rates(layer.delta),
        ])
    return rows


def metadata_markdown(entry: AdapterEntry, layers: list[LayerDirections]) -> str:
    """A short table of what the adapter is (rank, s, t, steps, base model, trigger prompt, ...)."""
    meta = entry.metadata or {}
    if not meta:
        return (
            f"**{entry.name}** is a plain LoRA file without LoRA-Dash metadata: it can be used for generation, "
            "but there are no selected directions to show."
        )
    fields = [
        ("kind", entry.kind),
        ("rank r", meta.get("rank")),
        ("alpha", meta.get("alpha")),
        ("directions s", meta.get("num_directions")),
        ("warm-up t (optimizer steps)", meta.get("warmup_steps")),
        ("directions selected at step", meta.get("selected_at_step")),
        ("training steps", meta.get("global_step")),
        ("base model", meta.get("base_model")),
        ("trigger prompt", meta.get("instance_prompt")),
        ("target modules", ", ".join(meta.get("target_modules") or []) or None),
        ("layers with directions", len(layers) if layers else None),
    ]
    lines = [f"#### {entry.name}", "", "| setting | value |", "|---|---|"]
    lines += [f"| {label} | {'`' + str(value) + '`' if label in ('base model', 'trigger prompt') else value} |" for label, value in fields if value not in (None, "")]
    if not layers:
        lines += ["", "No `dash_adapter.safetensors` beside this file, so the selected directions cannot be shown."]
    elif not any(layer.selected for layer in layers):
        lines += ["", "No directions were selected (a plain LoRA run, or training stopped before step t)."]
    return "\n".join(lines)


def metadata_summary(entry: AdapterEntry) -> dict[str, Any]:
    """The metadata fields the Inspect tab reports, as a dict (for the JSON view and API clients)."""
    meta = entry.metadata or {}
    keys = ("format", "rank", "alpha", "num_directions", "warmup_steps", "selected_at_step", "global_step", "base_model", "instance_prompt", "target_modules", "world_size")
    return {"name": entry.name, "kind": entry.kind, **{key: meta[key] for key in keys if key in meta}}
