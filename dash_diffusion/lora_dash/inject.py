"""Put LoRA-Dash layers into a model, find them, select their directions, take them out again.

Modules are addressed by qualified name, never by position: a module is wrapped when its name equals
a target or ends with ``"." + target`` (so ``"to_out.0"`` matches ``...attn1.to_out.0`` and ``"to_q"``
does not match ``...add_q_proj``). ``nn.Linear`` modules become :class:`~.layer.DashLinear`, ``nn.Conv2d``
modules :class:`~.layer.DashConv2d` (``conv1`` matches every ResnetBlock2D's first convolution).
"""

from __future__ import annotations

from typing import Any, Collection

import torch
from torch import nn

from ..errors import DashError
from .config import DashConfig
from .directions import iter_batched_svd
from .layer import DASH_LAYER_TYPES, DashLayer

#: Attribute under which :func:`inject_dash` records the config on the model (read by the exporters).
CONFIG_ATTRIBUTE = "dash_config"


def matches_target(name: str, targets: tuple[str, ...]) -> bool:
    """True when the qualified module name ``name`` ends with one of ``targets`` at a name boundary."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def inject_dash(model: nn.Module, config: DashConfig) -> list[str]:
    """Freeze ``model`` and wrap every target ``nn.Linear`` / ``nn.Conv2d`` in a :class:`DashLinear` /
    :class:`DashConv2d`.

    Returns the qualified names of the wrapped modules (sorted as in ``named_modules``). Adapter
    weights are float32 on each base layer's device. Raises :class:`DashError` when nothing matches or
    the model already carries LoRA-Dash layers.
    """
    if dash_layers(model):
        raise DashError("the model already has LoRA-Dash layers: call unwrap_dash(model) before injecting again")
    targets = [
        name
        for name, module in model.named_modules()
        if type(module) in DASH_LAYER_TYPES and matches_target(name, config.target_modules)
    ]
    if not targets:
        layer_names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m) in DASH_LAYER_TYPES})
        raise DashError(
            f"no nn.Linear or nn.Conv2d module matches target_modules {list(config.target_modules)}: "
            f"choose among the model's layer names, e.g. {layer_names[:8]}"
        )
    model.requires_grad_(False)
    for name in targets:
        base = model.get_submodule(name)
        try:
            layer = DASH_LAYER_TYPES[type(base)](
                base, config.rank, config.lora_alpha, config.num_directions, config.dropout, init_lora_weights=config.init_lora_weights
            )
        except TypeError as error:
            raise DashError(f"module '{name}' cannot carry LoRA-Dash ({error}): drop it from target_modules") from error
        _set_submodule(model, name, layer)
    setattr(model, CONFIG_ATTRIBUTE, config)
    return targets


def dash_layers(model: nn.Module) -> dict[str, DashLayer]:
    """All LoRA-Dash layers (:class:`DashLinear`, :class:`DashConv2d`) of ``model`` by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, DashLayer)}


def dash_config_of(model: nn.Module) -> DashConfig | None:
    """The config recorded by :func:`inject_dash` (None if the model was built otherwise)."""
    return getattr(model, CONFIG_ATTRIBUTE, None)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """``lora_A``, ``lora_B`` and ``dash_delta`` of every LoRA-Dash layer, in a stable order."""
    params: list[nn.Parameter] = []
    for layer in dash_layers(model).values():
        params += [layer.lora_A.weight, layer.lora_B.weight, layer.dash_delta]
    return params


def unwrap_dash(model: nn.Module, merge: bool = False) -> list[str]:
    """Replace every LoRA-Dash layer by its ``base_layer`` (adding the update into it when ``merge``).

    Returns the names of the unwrapped modules.
    """
    layers = dash_layers(model)
    for name, layer in layers.items():
        if merge:
            layer.merge()
        elif layer.merged:
            layer.unmerge()
        _set_submodule(model, name, layer.base_layer)
    if hasattr(model, CONFIG_ATTRIBUTE):
        delattr(model, CONFIG_ATTRIBUTE)
    return list(layers)


@torch.no_grad()
def select_directions(
    model: nn.Module,
    svds: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    names: Collection[str] | None = None,
) -> dict[str, dict[str, list]]:
    """Select the task-specific directions of every LoRA-Dash layer in ``model``.

    The SVDs of the frozen weights are computed batched by shape on ``device`` (default: the weights'
    device), or taken from ``svds`` (name -> :class:`~dash_diffusion.lora_dash.directions.SVD`, e.g. computed ahead
    of the phase boundary with :func:`~dash_diffusion.lora_dash.directions.batched_svd`). Each chunk of
    decompositions is consumed at once, so peak memory stays at one chunk.

    ``names`` restricts the work to those layers (a data-parallel process selecting its share); the
    others are left as they are.

    Returns a per-layer summary: ``{"indices": [...], "change_rates": [...], "singular_values": [...]}``
    for the selected positions (unused slots, index -1, are left out).
    """
    layers = {n: m for n, m in dash_layers(model).items() if m.num_directions > 0 and (names is None or n in names)}
    svds = svds or {}
    missing = {n: m.weight_matrix() for n, m in layers.items() if n not in svds}
    summary: dict[str, dict[str, list]] = {}

    def install(name: str, svd) -> None:
        selection = layers[name].select_directions(svd)
        used = selection.indices[selection.indices >= 0]
        summary[name] = {
            "indices": used.tolist(),
            "change_rates": selection.change_rates[used].tolist(),
            "singular_values": svd.S[used].tolist(),
        }

    for name in layers:
        if name in svds:
            install(name, svds[name])
    for name, svd in iter_batched_svd(missing, device=device):
        install(name, svd)
    return {name: summary[name] for name in layers}
