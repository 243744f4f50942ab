"""A training request as the Train tab or the ``/train`` API sends it, checked and turned into a
:class:`~dash_diffusion.training.train_config.TrainConfig`.

A request is: photos (or an existing dataset), the method (``LoRA-Dash`` or ``LoRA``), a preset
(``quick``, ``standard``, ``quality``) and options as a JSON object. Option names are the trainer's own
(``rank``, ``dash_directions``, ``max_train_steps`` ...) or the short names of the Train tab
(``s``, ``t``, ``steps``, ``lr`` ...), see :data:`ALIASES`; anything else, a wrong type or a number out
of range is answered with one line (:class:`DashError`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dash_diffusion.errors import DashError
from dash_diffusion.training.train_config import TrainConfig

from .datasets import DEFAULT_TRIGGER, clean_name, prompts_for
from .train_presets import DEFAULT_PRESET, PRESETS

METHODS = ("LoRA-Dash", "LoRA")
MAX_STEPS = 20_000
#: Short names accepted for trainer options.
ALIASES = {
    "steps": "max_train_steps", "s": "dash_directions", "directions": "dash_directions", "t": "dash_warmup_steps",
    "warmup": "dash_warmup_steps", "lr": "learning_rate", "prior_preservation": "with_prior_preservation",
    "validation_interval": "validation_steps", "checkpoint_interval": "checkpointing_steps", "text_encoders": "train_text_encoder",
    "flip": "random_flip",
}
#: Whole-number options: (lowest, highest).
INTEGER_OPTIONS = {
    "rank": (1, 128), "dash_directions": (1, 256), "dash_warmup_steps": (0, MAX_STEPS), "max_train_steps": (1, MAX_STEPS),
    "resolution": (32, 2048), "num_class_images": (1, 1000), "validation_steps": (1, MAX_STEPS), "num_validation_images": (1, 8),
    "validation_inference_steps": (1, 100), "checkpointing_steps": (1, MAX_STEPS), "seed": (0, 2**31 - 1),
    "checkpoints_total_limit": (1, 100), "repeats": (1, 100), "gradient_accumulation_steps": (1, 64),
}
FLOAT_OPTIONS = {"learning_rate": (1e-7, 1.0), "text_encoder_lr": (0.0, 1.0), "prior_loss_weight": (0.0, 10.0)}
BOOL_OPTIONS = ("bucketing", "random_flip", "with_prior_preservation", "train_text_encoder", "center_crop", "gradient_checkpointing")
TEXT_OPTIONS = {"instance_prompt": 500, "class_prompt": 500, "validation_prompt": 500, "trigger": 40, "class_name": 80, "run_name": 64}
CHOICE_OPTIONS = {"mixed_precision": ("no", "fp16", "bf16"), "lr_scheduler": ("constant", "constant_with_warmup", "linear", "cosine")}
ALLOWED = set(INTEGER_OPTIONS) | set(FLOAT_OPTIONS) | set(BOOL_OPTIONS) | set(TEXT_OPTIONS) | set(CHOICE_OPTIONS)


def parse_options(options: object) -> dict[str, Any]:
    """Checked options from a dict or a JSON string (empty: ``{}``); short names become trainer names."""
    if options is None or options == "":
        return {}
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except ValueError as error:
            raise DashError(f"options are not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(options, dict):
        raise DashError(f"options must be a JSON object like {{\"steps\": 500}}, got {type(options).__name__}")
    checked: dict[str, Any] = {}
    for raw_key, value in options.items():
        key = ALIASES.get(str(raw_key), str(raw_key))
        if key not in ALLOWED:
            raise DashError(f"unknown option {raw_key!r}: use {', '.join(sorted(ALLOWED | set(ALIASES)))}")
        if value is None:
            continue
        value = _checked(key, value)
        if value != "":  # an empty text box means the default
            checked[key] = value
    return checked


def _checked(key: str, value: object) -> Any:
    if key in BOOL_OPTIONS:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise DashError(f"option {key} must be true or false, got {value!r}")
    if key in TEXT_OPTIONS:
        if not isinstance(value, str):
            raise DashError(f"option {key} must be text, got {value!r}")
        text = " ".join(value.split())
        if len(text) > TEXT_OPTIONS[key]:
            raise DashError(f"option {key} is limited to {TEXT_OPTIONS[key]} characters")
        return text
    if key in CHOICE_OPTIONS:
        if value not in CHOICE_OPTIONS[key]:
            raise DashError(f"option {key} must be one of {', '.join(CHOICE_OPTIONS[key])}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DashError(f"option {key} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise DashError(f"option {key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DashError(f"option {key} must be a finite number, got {value!r}")
    if key in FLOAT_OPTIONS:
        low, high = FLOAT_OPTIONS[key]
        if not low <= number <= high:
            raise DashError(f"option {key} must be from {low:g} to {high:g}, got {value!r}")
        return number
    low, high = INTEGER_OPTIONS[key]
    if number != int(number) or not low <= number <= high:
        raise DashError(f"option {key} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


@dataclass
class TrainRequest:
    """A checked request: everything but the dataset folder, which is known once photos are stored."""

    method: str
    preset: str
    options: dict[str, Any]

    @property
    def dash(self) -> bool:
        return self.method == METHODS[0]


def check_request(method: object, preset: object, options: object) -> TrainRequest:
    """Method, preset and options checked; :class:`DashError` with one line otherwise."""
    method = method or METHODS[0]
    preset = preset or DEFAULT_PRESET
    if method not in METHODS:
        raise DashError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    if preset not in PRESETS:
        raise DashError(f"unknown preset {preset!r}: use {', '.join(PRESETS)}")
    return TrainRequest(str(method), str(preset), parse_options(options))


def default_mixed_precision(device: str) -> str:
    """``no`` on the CPU; ``bf16`` on a GPU that has it, else ``fp16``."""
    if not device.startswith("cuda"):
        return "no"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def run_name(dataset: str, request: TrainRequest, taken: Path) -> str:
    """``<dataset>-<dash|lora>-<preset>-<date>-<time>`` (or the requested ``run_name``), unused in ``taken``."""
    wanted = request.options.get("run_name")
    if wanted:
        name = clean_name(wanted, "run name")
        if (taken / name).exists():
            raise DashError(f"a folder named '{name}' already exists in {taken}: choose another run name")
        return name
    base = clean_name(f"{dataset}-{'dash' if request.dash else 'lora'}-{request.preset}-{time.strftime('%Y%m%d-%H%M%S')}", "run name")
    name, index = base, 2
    while (taken / name).exists():
        name, index = f"{base}-{index}", index + 1
    return name


def make_config(request: TrainRequest, *, base: str, dataset_folder: Path, class_dir: Path, output_dir: Path, resolution: int, device: str,
                mask_dir: Path | None = None) -> TrainConfig:
    """The trainer's config for a checked request (the preset, then the options on top); ``mask_dir``
    holds the photos' loss masks (``--instance_mask_dir``), if any."""
    preset = PRESETS[request.preset]
    options = dict(request.options)
    trigger = options.pop("trigger", None) or DEFAULT_TRIGGER
    class_name = options.pop("class_name", None)
    options.pop("run_name", None)
    if class_name or trigger != DEFAULT_TRIGGER:
        from dash_diffusion.data.dreambooth import default_class_name

        instance_prompt, class_prompt = prompts_for(trigger, class_name or default_class_name(dataset_folder))
        options.setdefault("instance_prompt", instance_prompt)
        options.setdefault("class_prompt", class_prompt)
    values: dict[str, Any] = {
        "rank": preset.rank, "dash_directions": preset.directions, "dash_warmup_steps": preset.warmup_steps,
        "max_train_steps": preset.steps, "learning_rate": preset.learning_rate, "resolution": resolution,
        "checkpointing_steps": max(1, preset.steps // 4), "validation_steps": max(1, preset.steps // 4),
        "mixed_precision": default_mixed_precision(device),
    }
    values.update(options)
    steps, warmup = values["max_train_steps"], values["dash_warmup_steps"]
    if request.dash and warmup >= steps:
        raise DashError(f"t ({warmup} warm-up steps) must be below the number of steps ({steps}): LoRA-Dash selects its directions after step t")
    if values["resolution"] % 8:
        raise DashError(f"resolution must be a multiple of 8, got {values['resolution']}")
    if values.get("with_prior_preservation"):
        values["class_dir"] = str(class_dir)
    if mask_dir is not None:
        values["instance_mask_dir"] = str(mask_dir)
    values.setdefault("instance_prompt", None)
    if not values.get("instance_prompt"):
        from dash_diffusion.data.dreambooth import default_instance_prompt

        values["instance_prompt"] = default_instance_prompt(dataset_folder)  # recorded in run.toml
    return TrainConfig(
        pretrained_model_name_or_path=base, instance_dir=str(dataset_folder), output_dir=str(output_dir), no_dash=not request.dash,
        **values,
    )
