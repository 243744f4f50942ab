"""What a run leaves behind: the per-step log, the cross-process agreement check and the final files.

``logs/steps.jsonl`` holds one JSON line per optimizer step (loss, each process's loss in
multi-process runs, learning rate, phase, seconds); a resumed run first drops the lines of steps it will
train again, so every step appears once. At the end every process must hold bit-identical adapters:
a fingerprint of every trainable tensor and every direction buffer is compared across processes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DashError
from ..formats.export import layer_tensors, save_adapter
from ..formats.safetensors_io import atomic_write_text
from ..lora_dash.inject import dash_config_of, dash_layers
from .model_card import model_card

STEPS_LOG = Path("logs") / "steps.jsonl"


def truncate_steps_log(path: Path, last_step: int) -> None:
    """Keep only the lines of optimizer steps ``<= last_step`` (a resumed run trains the rest again)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= last_step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def append_step(path: Path, record: dict[str, Any]) -> None:
    """Add one optimizer step's record to the log."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def adapter_fingerprint(model: nn.Module) -> torch.Tensor:
    """(2,) float64: the sum and the sum of squares of every adapter tensor of ``model`` (A, B, delta,
    U_s, V_s, indices, change rates). Processes holding equal tensors get bit-identical fingerprints;
    any divergence changes them."""
    total = torch.zeros(2, dtype=torch.float64)
    for layer in dash_layers(model).values():
        for tensor in layer_tensors(layer).values():
            values = tensor.detach().double().cpu()
            total += torch.stack([values.sum(), values.square().sum()])
    return total


def check_processes_agree(accelerator: Any, models: dict[str, nn.Module]) -> None:
    """Stop with a clear message when the processes' adapters differ in any trainable tensor or direction."""
    local = torch.stack([adapter_fingerprint(model) for model in models.values()])  # (components, 2)
    gathered = accelerator.gather(local.to(accelerator.device)[None]).cpu()  # (processes, components, 2)
    differing = [prefix for k, prefix in enumerate(models) if not torch.equal(gathered[:, k], gathered[:1, k].expand_as(gathered[:, k]))]
    if differing:
        raise DashError(f"the processes ended with different {', '.join(differing)} adapters (fingerprints {gathered.tolist()}): no file was written; please report this with your accelerate config")


def write_outputs(config: Any, models: dict[str, nn.Module], instance_prompt: str, selected_at_step: int | None, global_step: int, world_size: int = 1) -> Path:
    """``training_args.json``, the README model card and the three adapter files (a format that fails
    to write never costs the others)."""
    output = config.output_path
    metadata = {
        "base_model": config.pretrained_model_name_or_path,
        "selected_at_step": selected_at_step,
        "global_step": global_step,
        "instance_prompt": instance_prompt,
        "world_size": world_size,
        "trainer": "dash_diffusion train_dreambooth_dash.py",
    }
    atomic_write_text(output / "training_args.json", json.dumps(config.to_dict(), indent=2))
    card_meta = {**dash_config_of(models["unet"]).to_dict(), **metadata}
    atomic_write_text(output / "README.md", model_card(config.pretrained_model_name_or_path, instance_prompt, card_meta, config.train_text_encoder))
    save_adapter(output, models["unet"], models.get("text_encoder"), models.get("text_encoder_2"), metadata=metadata, save_precision=config.save_precision)
    return output
