"""Check a LoRA file against an SDXL pipeline before handing it to ``pipe.load_lora_weights``.

diffusers only warns when nothing of a file matches the model (a file without the ``unet.`` prefix
loads nothing) and reports shape mismatches deep inside PEFT. :func:`check_lora_file` reads the header
alone and raises one :class:`~dash_diffusion.errors.AdapterMismatchError` line instead: unknown layout,
missing prefix, or the first module that does not exist or does not fit. Only names and shapes are read,
so files saved in any precision (fp32, fp16, bf16) are checked alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import AdapterMismatchError, DashError
from .safetensors_io import dash_metadata, read_header
from .sgm_names import KOHYA_PREFIXES, file_module_name, kohya_module_key

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


@dataclass
class LoraFileInfo:
    """What a checked file holds."""

    path: Path
    layout: str  # "diffusers" or "kohya"
    rank: int
    num_modules: int
    metadata: dict[str, Any] | None  # the lora_dash header entry, if any


def _linear_shapes(pipe: Any) -> dict[str, dict[str, tuple[int, int]]]:
    """``{component: {module path: (out, in)}}`` for every Linear of the pipeline (wrapped ones by their own name)."""
    shapes: dict[str, dict[str, tuple[int, int]]] = {}
    for component in COMPONENTS:
        model = getattr(pipe, component, None)
        if model is None:
            continue
        found = {}
        for name, module in model.named_modules():
            base = getattr(module, "base_layer", module)
            if isinstance(base, nn.Linear) and not name.endswith(".base_layer"):
                found[file_module_name(component, name)] = (base.out_features, base.in_features)
        shapes[component] = found
    return shapes


def _kohya_index(pipe: Any, shapes: dict[str, dict[str, tuple[int, int]]]) -> dict[str, tuple[str, str]]:
    """kohya stem -> (component, module path) for the modules that have a kohya spelling."""
    index = {}
    layers_per_block = int(getattr(getattr(pipe.unet, "config", None), "layers_per_block", 2) or 2)
    for component, modules in shapes.items():
        for name in modules:
            try:
                index[kohya_module_key(component, name, layers_per_block)] = (component, name)
            except DashError:
                continue
    return index


def _check_pair(path: Path, label: str, down: tuple, up: tuple, expected: tuple[int, int]) -> int:
    out_features, in_features = expected
    if len(down) != 2 or len(up) != 2 or down[1] != in_features or up[0] != out_features or down[0] != up[1]:
        raise AdapterMismatchError(
            f"module '{label}' of '{path.name}' does not fit this base model: down {down}, up {up} for a Linear "
            f"of {in_features} -> {out_features}; use an adapter trained on this base model"
        )
    return down[0]


def check_lora_file(path: str | Path, pipe: Any) -> LoraFileInfo:
    """Validate a diffusers- or kohya-layout LoRA file against ``pipe`` (an SDXL pipeline) by its header."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise DashError(f"'{path.name}' is not a .safetensors file: only safetensors adapters are loaded (never pickles)")
    tensor_shapes, header = read_header(path)
    if not tensor_shapes:
        raise AdapterMismatchError(f"'{path.name}' holds no tensors: export the adapter again")
    shapes = _linear_shapes(pipe)
    keys = list(tensor_shapes)
    if any(k.endswith(".dash_U") for k in keys):
        raise AdapterMismatchError(f"'{path.name}' is a native LoRA-Dash file: load the pytorch_lora_weights.safetensors beside it (or its folder)")
    kohya = [k for k in keys if k.startswith(tuple(KOHYA_PREFIXES.values()))]
    diffusers = [k for k in keys if k.split(".", 1)[0] in COMPONENTS]
    if diffusers and len(diffusers) == len(keys):
        return _check_diffusers(path, tensor_shapes, header, shapes)
    if kohya:
        return _check_kohya(path, tensor_shapes, header, shapes, _kohya_index(pipe, shapes))
    example = keys[0]
    raise AdapterMismatchError(
        f"'{path.name}' has keys like '{example}' without a 'unet.' / 'text_encoder.' prefix (diffusers would load "
        f"nothing from it): prefix each key with its component, e.g. 'unet.{example}'"
    )


def _check_diffusers(path: Path, tensor_shapes: dict, header: dict, shapes: dict) -> LoraFileInfo:
    ranks = set()
    modules = 0
    for key in tensor_shapes:
        if not key.endswith(".lora_A.weight"):
            if ".lora_B.weight" not in key and not key.endswith((".alpha", ".lora_magnitude_vector")):
                raise AdapterMismatchError(f"'{path.name}' has a tensor '{key}' that is not a LoRA factor: the file is not a diffusers LoRA")
            continue
        component, _, rest = key.partition(".")
        name = rest[: -len(".lora_A.weight")]
        if name not in shapes.get(component, {}):
            raise AdapterMismatchError(f"module '{component}.{name}' of '{path.name}' does not exist in this base model: use an adapter trained on it")
        up_key = f"{component}.{name}.lora_B.weight"
        if up_key not in tensor_shapes:
            raise AdapterMismatchError(f"'{path.name}' has lora_A but no lora_B for '{component}.{name}': export the adapter again")
        ranks.add(_check_pair(path, f"{component}.{name}", tensor_shapes[key], tensor_shapes[up_key], shapes[component][name]))
        modules += 1
    if not modules:
        raise AdapterMismatchError(f"'{path.name}' holds no lora_A/lora_B pairs: export the adapter again")
    return LoraFileInfo(path, "diffusers", max(ranks), modules, dash_metadata(header))


def _check_kohya(path: Path, tensor_shapes: dict, header: dict, shapes: dict, index: dict) -> LoraFileInfo:
    ranks = set()
    known = 0
    for key, down in tensor_shapes.items():
        if not key.endswith(".lora_down.weight"):
            continue
        stem = key[: -len(".lora_down.weight")]
        up = tensor_shapes.get(f"{stem}.lora_up.weight")
        if up is None:
            raise AdapterMismatchError(f"'{path.name}' has lora_down but no lora_up for '{stem}': the file is damaged")
        if stem in index:
            component, name = index[stem]
            ranks.add(_check_pair(path, stem, down, up, shapes[component][name]))
            known += 1
    if not known:
        raise AdapterMismatchError(f"no module of '{path.name}' matches this base model's transformer or text-encoder Linears: use an SDXL adapter")
    return LoraFileInfo(path, "kohya", max(ranks), known, dash_metadata(header))
