"""Export a LoRA-Dash adapter to three safetensors files.

Each adapted layer is folded into a plain LoRA of rank r + s (LORA_DASH.md)::

    lora_B' = [ (alpha / r) B | U_s diag(delta) ]   (out x (r+s))
    lora_A' = [ A ; V_s^T ]                         ((r+s) x in)
    Delta W = lora_B' lora_A'                        (scale 1: alpha' = rank' = r + s)

so tools that read plain LoRA files reproduce the trained model exactly. Every layer of a file has the
same rank (r + s, zero-padded to the largest one when the text encoders use another rank) and every
scale is folded into ``lora_B'``, which sidesteps the per-layer rank and
per-layer alpha pitfalls of current loaders (FORMATS.md).

Files (written atomically into ``output_dir``):

Text-encoder modules are always named by their canonical CLIP path (``text_model.encoder.layers...``),
whatever layout the installed transformers uses.

- ``pytorch_lora_weights.safetensors``: diffusers keys ``unet.<path>.lora_A.weight`` / ``.lora_B.weight``
  (and ``text_encoder.`` / ``text_encoder_2.``) with ``lora_adapter_metadata`` in the header.
- ``lora_dash_kohya.safetensors``: kohya/SGM keys ``lora_unet_input_blocks_4_1_..._to_q.lora_down.weight``,
  ``.lora_up.weight`` and one ``.alpha`` equal to r + s for every layer.
- ``dash_adapter.safetensors``: the native file with the raw tensors (A, B, U_s, V_s, delta, indices,
  change rates) for resuming and inspection.

``save_precision`` (``"fp32"``, ``"fp16"``, ``"bf16"``, as sd-scripts' ``--save_precision``) rounds every
floating tensor of the three files once, after folding: the files then hold ``round(B') round(A')``, whose
relative error per entry is at most 2^-11 (fp16) or 2^-8 (bf16). Indices stay int64 and fp32 stays exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import DashError
from ..lora_dash.config import DashConfig
from ..lora_dash.inject import dash_config_of, dash_layers
from ..lora_dash.layer import DashLayer
from .safetensors_io import DASH_METADATA_KEY, atomic_save
from .sgm_names import attention_up_blocks_of, file_module_name, kohya_module_key

DIFFUSERS_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
KOHYA_WEIGHT_NAME = "lora_dash_kohya.safetensors"
NATIVE_WEIGHT_NAME = "dash_adapter.safetensors"
NATIVE_FORMAT = "lora-dash"
NATIVE_FORMAT_VERSION = 1
#: Tensors of one module in the native file, after ``<prefix>.<module path>.``.
NATIVE_TENSORS = ("lora_A.weight", "lora_B.weight", "dash_U", "dash_V", "dash_delta", "dash_indices", "dash_change_rate")
#: ``save_precision`` values and the dtype each writes floating tensors in.
SAVE_PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@torch.no_grad()
def fold_to_lora(layer: DashLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lora_A', lora_B')`` as matrices of shapes ((r+s) x fan_in, out x (r+s)), float32 on CPU, with
    ``lora_B' @ lora_A' == layer.delta_weight()`` (a convolution's files reshape them with
    ``layer.file_factors``)."""
    down, column_scale, up = (t.detach().float().cpu() for t in layer.folded_factors())
    return down.contiguous(), (up * column_scale).contiguous()


def _components(unet: nn.Module, text_encoder: nn.Module | None, text_encoder_2: nn.Module | None) -> dict[str, nn.Module]:
    found = {"unet": unet, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2}
    components = {prefix: model for prefix, model in found.items() if model is not None}
    for prefix, model in components.items():
        if not dash_layers(model):
            raise DashError(f"the {prefix} has no LoRA-Dash layers: call inject_dash() on it before saving")
    return components


def component_config(model: nn.Module) -> DashConfig:
    """The model's recorded :class:`DashConfig`, or one rebuilt from its layers."""
    config = dash_config_of(model)
    if config is not None:
        return config
    first = next(iter(dash_layers(model).values()))
    names = tuple(dash_layers(model))  # exact qualified names also work as targets
    return DashConfig(rank=first.rank, alpha=first.lora_alpha, num_directions=first.num_directions, target_modules=names)


def adapter_metadata(components: dict[str, nn.Module], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON metadata that every exported file carries under the ``lora_dash`` header key
    (each file adds ``"layout"``: ``"diffusers"``, ``"kohya"`` or ``"native"``)."""
    configs = {prefix: component_config(model).to_dict() for prefix, model in components.items()}
    unet = configs["unet"]
    meta: dict[str, Any] = {
        "format": NATIVE_FORMAT,
        "format_version": NATIVE_FORMAT_VERSION,
        "rank": unet["rank"],
        "alpha": unet["alpha"],
        "num_directions": unet["num_directions"],
        "warmup_steps": unet["warmup_steps"],
        "target_modules": unet["target_modules"],
        "base_model": None,
        "selected_at_step": None,
        "components": configs,
    }
    meta.update(extra or {})
    return meta


def _folded(components: dict[str, nn.Module]):
    """Yield ``(prefix, model, name, (lora_A', lora_B'))`` with every layer zero-padded to the largest
    rank of the file (exact: the padded rows of A' meet zero columns of B'), so one rank holds throughout;
    in the file's shapes (a convolution's down factor as (rank, in, kh, kw) kernels, its up factor
    (out, rank, 1, 1))."""
    layers = [(prefix, model, name, layer) for prefix, model in components.items() for name, layer in dash_layers(model).items()]
    rank = max(layer.rank + layer.num_directions for *_, layer in layers)
    for prefix, model, name, layer in layers:
        down, up = fold_to_lora(layer)
        pad = rank - down.shape[0]
        if pad:
            down = torch.cat([down, down.new_zeros(pad, down.shape[1])], dim=0)
            up = torch.cat([up, up.new_zeros(up.shape[0], pad)], dim=1)
        yield prefix, model, name, layer.file_factors(down, up)


def diffusers_state_dict(components: dict[str, nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Folded tensors with diffusers keys and the matching ``lora_adapter_metadata`` (LoraConfig kwargs per prefix)."""
    tensors: dict[str, torch.Tensor] = {}
    peft_kwargs: dict[str, Any] = {}
    for prefix, _model, name, (down, up) in _folded(components):
        path = file_module_name(prefix, name)
        tensors[f"{prefix}.{path}.lora_A.weight"] = down
        tensors[f"{prefix}.{path}.lora_B.weight"] = up
        rank = down.shape[0]
        # PEFT matches targets by suffix: without "text_model." the name fits either transformers layout
        peft_kwargs.setdefault(f"{prefix}.target_modules", []).append(path.removeprefix("text_model."))
        peft_kwargs[f"{prefix}.r"] = rank
        peft_kwargs[f"{prefix}.lora_alpha"] = rank
    return tensors, peft_kwargs


def kohya_state_dict(components: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Folded tensors with kohya/SGM keys; ``.alpha`` equals the rank everywhere (scale 1)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, model, name, (down, up) in _folded(components):
        config = getattr(model, "config", None)
        layers_per_block = int(getattr(config, "layers_per_block", 2) or 2)
        attention_up_blocks = attention_up_blocks_of(config) if prefix == "unet" and config is not None else None
        stem = kohya_module_key(prefix, name, layers_per_block, attention_up_blocks=attention_up_blocks)
        tensors[f"{stem}.lora_down.weight"] = down
        tensors[f"{stem}.lora_up.weight"] = up
        tensors[f"{stem}.alpha"] = torch.tensor(float(down.shape[0]))
    return tensors


def layer_tensors(layer: DashLayer) -> dict[str, torch.Tensor]:
    """The live parameters and buffers of a layer under their native-file names (:data:`NATIVE_TENSORS`)."""
    return {
        "lora_A.weight": layer.lora_A.weight,
        "lora_B.weight": layer.lora_B.weight,
        "dash_U": layer.dash_U,
        "dash_V": layer.dash_V,
        "dash_delta": layer.dash_delta,
        "dash_indices": layer.dash_indices,
        "dash_change_rate": layer.dash_change_rate,
    }


def native_state_dict(components: dict[str, nn.Module], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Raw adapter tensors ``<prefix>.<path>.{lora_A.weight, lora_B.weight, dash_U, ...}`` on CPU
    (floating tensors in ``dtype``, indices in int64)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, model in components.items():
        for name, layer in dash_layers(model).items():
            path = file_module_name(prefix, name)
            for key, value in layer_tensors(layer).items():
                value = value.detach().cpu()
                tensors[f"{prefix}.{path}.{key}"] = value.float() if value.is_floating_point() else value
    return cast_floating(tensors, dtype)


def precision_dtype(save_precision: str) -> torch.dtype:
    """The dtype of a ``save_precision`` name; raises a one-line :class:`DashError` for an unknown one."""
    if save_precision not in SAVE_PRECISIONS:
        raise DashError(f"save_precision '{save_precision}' is unknown: use one of {', '.join(SAVE_PRECISIONS)}")
    return SAVE_PRECISIONS[save_precision]


def cast_floating(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Cast the floating tensors to ``dtype`` (integer ones untouched); refuses a finite value that
    overflows ``dtype`` (|x| > 65504 in fp16) rather than writing inf."""
    cast: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if value.is_floating_point() and value.dtype != dtype:
            rounded = value.to(dtype)
            if not torch.equal(torch.isfinite(rounded), torch.isfinite(value)):
                raise DashError(f"tensor '{key}' overflows {dtype} (max |x| = {value.abs().max().item():.3g}): save with save_precision 'bf16' or 'fp32'")
            value = rounded
        cast[key] = value
    return cast


def _kohya_header(meta: dict[str, Any], rank: int) -> dict[str, str]:
    """sd-scripts style ``ss_*`` fields that A1111 and ComfyUI show for a LoRA."""
    return {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(rank),
        "ss_base_model_version": "sdxl_base_v1-0",
        "ss_sd_model_name": str(meta.get("base_model") or ""),
        "ss_training_comment": f"LoRA-Dash r={meta['rank']} s={meta['num_directions']} folded into rank {rank}",
    }


def _remove_stale(path: Path) -> None:
    """Delete an earlier export's file of a format that failed now, so no folder mixes two adapters."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _write_each(writers: dict[str, tuple[Path, Callable[[], dict[str, torch.Tensor]], dict[str, str]]]) -> dict[str, Path]:
    """Build and write each file in order, each on its own: a format that fails leaves the others
    written (its stale file from an earlier export is removed), then one :class:`DashError` names it."""
    written: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for layout, (path, build, header) in writers.items():
        try:
            written[layout] = atomic_save(build(), path, header)
        except Exception as error:  # noqa: BLE001 - reported below, after the other formats are written
            _remove_stale(path)
            failed[layout] = " ".join(str(error).split()) or type(error).__name__
    if failed:
        reasons = "; ".join(f"the {layout} file failed: {reason}" for layout, reason in failed.items())
        kept = ", ".join(f"{layout} ({path})" for layout, path in written.items()) or "none"
        raise DashError(f"{reasons}; written: {kept}; load a written file or fix the cause and export again")
    return written


def save_adapter(
    output_dir: str | Path,
    unet: nn.Module,
    text_encoder: nn.Module | None = None,
    text_encoder_2: nn.Module | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    save_precision: str = "fp32",
) -> dict[str, Path]:
    """Write the native, diffusers and kohya files of an adapter into ``output_dir``, in that order.

    ``metadata`` adds JSON-serialisable fields to every file's ``lora_dash`` header entry (for example
    ``base_model``, ``selected_at_step``, ``instance_prompt``, ``global_step``); ``save_precision``
    (``"fp32"``, ``"fp16"``, ``"bf16"``) is the dtype of every floating tensor and is recorded there too.
    Each file is written independently: when one fails the others are still written, then one
    :class:`DashError` names the failed format, why, and the files written. Returns the paths by format
    name (``"native"``, ``"diffusers"``, ``"kohya"``).
    """
    dtype = precision_dtype(save_precision)
    components = _components(unet, text_encoder, text_encoder_2)
    meta = adapter_metadata(components, {**(metadata or {}), "save_precision": save_precision})
    output_dir = Path(output_dir)

    def header(layout: str) -> dict[str, str]:
        return {"format": "pt", DASH_METADATA_KEY: json.dumps({**meta, "layout": layout}, sort_keys=True)}

    diffusers_header = header("diffusers")

    def diffusers_file() -> dict[str, torch.Tensor]:
        tensors, peft_kwargs = diffusers_state_dict(components)
        diffusers_header["lora_adapter_metadata"] = json.dumps(peft_kwargs, sort_keys=True)
        return cast_floating(tensors, dtype)

    kohya_header = header("kohya")

    def kohya_file() -> dict[str, torch.Tensor]:
        tensors = kohya_state_dict(components)
        rank = next(v.shape[0] for k, v in tensors.items() if k.endswith(".lora_down.weight"))
        kohya_header.update(_kohya_header(meta, rank))
        return cast_floating(tensors, dtype)

    return _write_each(
        {
            "native": (output_dir / NATIVE_WEIGHT_NAME, lambda: native_state_dict(components, dtype), header("native")),
            "diffusers": (output_dir / DIFFUSERS_WEIGHT_NAME, diffusers_file, diffusers_header),
            "kohya": (output_dir / KOHYA_WEIGHT_NAME, kohya_file, kohya_header),
        }
    )
