"""Read the native LoRA-Dash file (``dash_adapter.safetensors``) and restore layers from it exactly.

Keys are ``<prefix>.<module path>.<tensor>`` with the tensors of
:data:`~dash_diffusion.formats.export.NATIVE_TENSORS`; the header's ``lora_dash`` entry holds the JSON metadata
(format ``"lora-dash"``, format version, rank, alpha, s, t, target modules, base model, the step at
which directions were selected, and one config per component).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AdapterMismatchError, DashError
from ..lora_dash.config import DashConfig
from ..lora_dash.inject import CONFIG_ATTRIBUTE, dash_layers, inject_dash
from ..lora_dash.layer import DASH_LAYER_TYPES
from .export import NATIVE_FORMAT, NATIVE_FORMAT_VERSION, NATIVE_TENSORS, layer_tensors
from .safetensors_io import dash_metadata, read_safetensors
from .sgm_names import file_module_name


@dataclass
class NativeAdapter:
    """The content of a native file: metadata and, per prefix, per module, the raw tensors."""

    path: Path
    metadata: dict[str, Any]
    modules: dict[str, dict[str, dict[str, torch.Tensor]]] = field(default_factory=dict)

    def config(self, prefix: str) -> DashConfig:
        """The :class:`DashConfig` recorded for component ``prefix``."""
        recorded = dict(self.metadata.get("components", {}).get(prefix) or {})
        known = {f.name: recorded[f.name] for f in dataclasses.fields(DashConfig) if f.name in recorded}
        return DashConfig(**known)


def read_native_adapter(path: str | Path) -> NativeAdapter:
    """Parse a native file; raises :class:`DashError` when it is not one."""
    path = Path(path)
    tensors, header = read_safetensors(path)
    meta = dash_metadata(header)
    if not meta or meta.get("format") != NATIVE_FORMAT or meta.get("layout", "native") != "native":
        raise DashError(f"'{path}' is not a LoRA-Dash native file (no 'lora-dash' header): pass the dash_adapter.safetensors written by the trainer")
    if int(meta.get("format_version", 0)) > NATIVE_FORMAT_VERSION:
        raise DashError(f"'{path}' has format version {meta['format_version']}, newer than this dash_diffusion reads ({NATIVE_FORMAT_VERSION}): upgrade dash_diffusion")
    adapter = NativeAdapter(path=path, metadata=meta)
    for key, value in tensors.items():
        prefix, _, rest = key.partition(".")
        suffix = next((t for t in NATIVE_TENSORS if rest.endswith("." + t)), None)
        if suffix is None:
            raise DashError(f"'{path}' has an unexpected tensor '{key}': the file is damaged or not a LoRA-Dash native file")
        module = rest[: -len(suffix) - 1]
        adapter.modules.setdefault(prefix, {}).setdefault(module, {})[suffix] = value
    return adapter


def _check_fits(adapter: NativeAdapter, prefix: str, model: nn.Module) -> None:
    """Raise one :class:`AdapterMismatchError` naming the first module that does not fit."""
    base_model = adapter.metadata.get("base_model") or "unknown"
    hint = f"the adapter was trained on base model '{base_model}': load it into that model"
    layers = dash_layers(model)
    for name, tensors in adapter.modules[prefix].items():
        if name not in layers:
            raise AdapterMismatchError(f"module '{prefix}.{name}' of '{adapter.path}' does not exist in this model: {hint}")
        expected = {key: tuple(value.shape) for key, value in layer_tensors(layers[name]).items()}
        for key in NATIVE_TENSORS:
            if key not in tensors:
                raise AdapterMismatchError(f"module '{prefix}.{name}' of '{adapter.path}' lacks '{key}': the file is incomplete, export it again")
            if tuple(tensors[key].shape) != expected[key]:
                raise AdapterMismatchError(
                    f"module '{prefix}.{name}' does not fit: '{key}' is {tuple(tensors[key].shape)} in '{adapter.path}' "
                    f"but {expected[key]} in this model; {hint}"
                )
            if tensors[key].is_floating_point() != (key != "dash_indices"):
                raise AdapterMismatchError(f"'{key}' of module '{prefix}.{name}' in '{adapter.path}' has dtype {tensors[key].dtype}: the file is damaged, export it again")
    for name in layers:
        if name not in adapter.modules[prefix]:
            raise AdapterMismatchError(f"module '{prefix}.{name}' of this model has no tensors in '{adapter.path}': inject with the adapter's target modules or use a matching file")


@torch.no_grad()
def load_dash_adapter(model: nn.Module, path: str | Path, prefix: str = "unet") -> list[str]:
    """Restore the LoRA-Dash layers of component ``prefix`` from a native file, exactly.

    A model without LoRA-Dash layers is injected first, with the file's config for exactly the file's
    modules; a model that has them (e.g. when resuming) must match them one for one. Floating tensors of
    any precision (fp32, fp16, bf16 files) are cast to the layer's dtype. Returns the module
    names loaded. Raises :class:`AdapterMismatchError` naming the first module that does not fit.
    """
    adapter = read_native_adapter(path)
    if prefix not in adapter.modules:
        found = sorted(adapter.modules) or ["none"]
        raise AdapterMismatchError(f"'{adapter.path}' holds no '{prefix}.' modules (it has: {', '.join(found)}): pass the prefix of a component it contains")
    config = adapter.config(prefix)
    # files spell text-encoder modules canonically; map them onto this model's own module names
    own_names = {file_module_name(prefix, n): n for n, _ in model.named_modules()}
    adapter.modules[prefix] = {own_names.get(f, f): tensors for f, tensors in adapter.modules[prefix].items()}
    if not dash_layers(model):
        names = tuple(adapter.modules[prefix])
        available = {n for n, m in model.named_modules() if type(m) in DASH_LAYER_TYPES}
        missing = next((n for n in names if n not in available), None)
        if missing is not None:
            base_model = adapter.metadata.get("base_model") or "unknown"
            raise AdapterMismatchError(f"module '{prefix}.{missing}' of '{adapter.path}' does not exist in this model: the adapter was trained on base model '{base_model}'")
        exact = dataclasses.replace(config, target_modules=names)
        try:
            inject_dash(model, exact)
        except (TypeError, RuntimeError) as error:
            raise AdapterMismatchError(f"cannot build the adapter's layers in this model ({error}): the adapter does not fit this base model") from error
        setattr(model, CONFIG_ATTRIBUTE, config)
    _check_fits(adapter, prefix, model)
    layers = dash_layers(model)
    for name, tensors in adapter.modules[prefix].items():
        for key, target in layer_tensors(layers[name]).items():
            # files saved with save_precision fp16/bf16 are widened to the layer's own dtype (float32)
            target.copy_(tensors[key].to(device=target.device, dtype=target.dtype))
    return list(adapter.modules[prefix])
