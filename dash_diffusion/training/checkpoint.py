"""Resumable checkpoints: adapter, optimizer, LR scheduler, RNG states and the trainer's own state.

Saving goes through ``accelerator.save_state`` (so RNG states of every process, the optimizer and the
grad scaler are handled the accelerate way) with hooks that replace the full model weights by the
native LoRA-Dash file (adapter tensors, selected directions, indices). Everything is written into a
hidden ``.checkpoint-N.tmp`` folder and renamed to ``checkpoint-N`` only when complete, so a process
killed at any moment never leaves a corrupt ``checkpoint-N``: "latest" is the highest complete one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import DashError
from ..formats.export import NATIVE_WEIGHT_NAME, layer_tensors, native_state_dict
from ..formats.safetensors_io import atomic_save, read_safetensors
from ..formats.sgm_names import file_module_name
from ..lora_dash.inject import dash_layers

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m[1]), p) for p in output_dir.iterdir() if (m := _NAME.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint folder to resume from (``"latest"``: the newest, or None when there is none yet)."""
    if not resume:
        return None
    if resume == "latest":
        found = checkpoint_dirs(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise DashError(f"'{resume}' is not a complete checkpoint (no {STATE_FILE}): pass a checkpoint-N folder or 'latest'")
    return path


def register_adapter_hooks(accelerator: Any, prefixes: dict[int, str]) -> None:
    """Make ``save_state``/``load_state`` store only the adapters (native file) instead of full weights.

    ``prefixes`` maps ``id(unwrapped model)`` to its component prefix (``"unet"``, ``"text_encoder"``...).
    """

    def component(model: nn.Module) -> tuple[str, nn.Module]:
        inner = accelerator.unwrap_model(model)
        return prefixes[id(inner)], inner

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        if accelerator.is_main_process:
            components = dict(component(m) for m in models)
            atomic_save(native_state_dict(components), Path(output_dir) / NATIVE_WEIGHT_NAME, {"format": "pt"})
        weights.clear()  # the base weights are frozen: never write them into checkpoints

    def load_hook(models: list, input_dir: str) -> None:
        while models:
            prefix, inner = component(models.pop())
            _load_checkpoint_adapter(inner, Path(input_dir) / NATIVE_WEIGHT_NAME, prefix)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _load_checkpoint_adapter(model: nn.Module, path: Path, prefix: str) -> None:
    """Copy the checkpoint's adapter tensors into the already-injected layers of ``model``."""
    tensors, _ = read_safetensors(path)
    for name, layer in dash_layers(model).items():
        stem = f"{prefix}.{file_module_name(prefix, name)}"
        for key, target in layer_tensors(layer).items():
            if f"{stem}.{key}" not in tensors:
                raise DashError(f"checkpoint '{path.parent}' lacks '{stem}.{key}': it was written by a run with other settings; start a new output_dir")
            target.data.copy_(tensors[f"{stem}.{key}"])


def save_checkpoint(accelerator: Any, output_dir: Path, step: int, state: dict[str, Any], total_limit: int | None) -> Path:
    """Write ``checkpoint-<step>`` atomically (all processes call this) and prune old ones."""
    final = output_dir / f"checkpoint-{step}"
    temporary = output_dir / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process and temporary.exists():
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (temporary / STATE_FILE).write_text(json.dumps({**state, "global_step": step}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        temporary.rename(final)
        if total_limit:
            for old in checkpoint_dirs(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, path: Path) -> dict[str, Any]:
    """Restore adapters, optimizer, scheduler and RNG states; returns the trainer state."""
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())
