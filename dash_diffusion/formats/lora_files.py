"""Check a LoRA file against an SDXL pipeline before handing it to ``pipe.load_lora_weights``.

diffusers only warns when nothing of a file matches the model (a file without the ``unet.`` prefix
loads nothing) and reports shape mismatches deep inside PEFT. :func:`check_lora_file` reads the header
alone and raises one :class:`~dash_diffusion.errors.AdapterMismatchError` line instead: unknown layout,
missing prefix, or the first module that does not exist or does not fit. Only names and shapes are read,
so files saved in any precision (fp32, fp16, bf16) are checked alike.

A module of ``out`` x ``in`` features fits a pair of factors of one rank ``r`` as follows::

    nn.Linear(in, out)                  down (r, in)            up (out, r)
    nn.Conv2d(in, out, (kh, kw))        down (r, in, kh, kw)    up (out, r, 1, 1)

(kohya's ``lora_down`` / ``lora_up`` and diffusers' ``lora_A`` / ``lora_B`` alike; a convolution's down
factor is a convolution with the module's kernel, its up factor a 1 x 1 one.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import AdapterMismatchError, DashError
from .safetensors_io import dash_metadata, read_header
from .sgm_names import (
    KOHYA_PREFIXES,
    attention_up_blocks_of,
    file_module_name,
    kohya_module_key,
)

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")

#: The weight shape of an adaptable module: ``(out, in)`` for a Linear, ``(out, in, kh, kw)`` for a Conv2d.
ModuleShape = tuple[int, ...]


@dataclass
class LoraFileInfo:
    """What a checked file holds."""

    path: Path
    layout: str  # "diffusers" or "kohya"
    rank: int
    num_modules: int
    metadata: dict[str, Any] | None  # the lora_dash header entry, if any


def _module_shape(module: nn.Module) -> ModuleShape | None:
    """``(out, in)`` of a Linear, ``(out, in, kh, kw)`` of a Conv2d, None for other modules."""
    if isinstance(module, nn.Linear):
        return (module.out_features, module.in_features)
    if isinstance(module, nn.Conv2d):
        return (module.out_channels, module.in_channels, *module.kernel_size)
    return None


def _module_shapes(pipe: Any) -> dict[str, dict[str, ModuleShape]]:
    """``{component: {module path: shape}}`` for every Linear and Conv2d of the pipeline (wrapped ones by their
    own name), shapes as :func:`_module_shape` gives them."""
    shapes: dict[str, dict[str, ModuleShape]] = {}
    for component in COMPONENTS:
        model = getattr(pipe, component, None)
        if model is None:
            continue
        found = {}
        for name, module in model.named_modules():
            shape = _module_shape(getattr(module, "base_layer", module))
            if shape is not None and not name.endswith(".base_layer"):
                found[file_module_name(component, name)] = shape
        shapes[component] = found
    return shapes


def _unet_layout(pipe: Any) -> tuple[int, frozenset[int] | None]:
    """``(layers_per_block, attention_up_blocks)`` of the pipeline's UNet (SDXL's when its config lacks them)."""
    config = getattr(getattr(pipe, "unet", None), "config", None)
    layers_per_block = int(getattr(config, "layers_per_block", 2) or 2)
    try:
        return layers_per_block, attention_up_blocks_of(config)
    except DashError:
        return layers_per_block, None


def _kohya_index(pipe: Any, shapes: dict[str, dict[str, ModuleShape]]) -> dict[str, tuple[str, str]]:
    """kohya stem -> (component, module path) for the modules that have a kohya spelling."""
    index = {}
    layers_per_block, attention_up_blocks = _unet_layout(pipe)
    for component, modules in shapes.items():
        for name in modules:
            try:
                stem = kohya_module_key(component, name, layers_per_block, attention_up_blocks=attention_up_blocks)
            except DashError:
                continue
            index[stem] = (component, name)
    return index


def _expected_factors(expected: ModuleShape) -> tuple[str, tuple, tuple]:
    """The module in words and the down and up shapes it takes, with ``r`` for the rank (module docstring)."""
    if len(expected) == 2:
        out_features, in_features = expected
        return f"a Linear of {in_features} -> {out_features}", ("r", in_features), (out_features, "r")
    out_channels, in_channels, kh, kw = expected
    return f"a {kh}x{kw} Conv2d of {in_channels} -> {out_channels}", ("r", in_channels, kh, kw), (out_channels, "r", 1, 1)


def _fits(down: tuple, up: tuple, expected: ModuleShape) -> bool:
    """True when ``down`` / ``up`` are one rank's factors of a module of shape ``expected`` (module docstring)."""
    _, want_down, want_up = _expected_factors(expected)
    if len(down) != len(want_down) or len(up) != len(want_up) or down[0] != up[1]:
        return False
    fixed = [(got, want) for got, want in zip(tuple(down) + tuple(up), want_down + want_up) if want != "r"]
    return all(got == want for got, want in fixed)


def _spell(shape: tuple) -> str:
    """``("r", 320, 3, 3)`` -> ``(r, 320, 3, 3)``."""
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _check_pair(path: Path, label: str, down: tuple, up: tuple, expected: ModuleShape) -> int:
    """The rank of the pair, or one AdapterMismatchError line naming the module and the shapes."""
    if not _fits(tuple(down), tuple(up), expected):
        kind, want_down, want_up = _expected_factors(expected)
        raise AdapterMismatchError(
            f"module '{label}' of '{path.name}' does not fit this base model: down {tuple(down)}, up {tuple(up)} for {kind} "
            f"(needs down {_spell(want_down)}, up {_spell(want_up)}); use an adapter trained on this base model"
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
    shapes = _module_shapes(pipe)
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
    for key, down in tensor_shapes.items():
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
        ranks.add(_check_pair(path, f"{component}.{name}", down, tensor_shapes[up_key], shapes[component][name]))
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
        raise AdapterMismatchError(f"no module of '{path.name}' matches this base model's kohya-named layers (transformer, resnet, sampler or text-encoder): use an SDXL adapter")
    return LoraFileInfo(path, "kohya", max(ranks), known, dash_metadata(header))
