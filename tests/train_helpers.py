"""Helpers for trainer tests: a small subject folder drawn here, a fast tiny-model config, file comparison."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from dash_diffusion.training.train_config import TrainConfig


def draw_subject(folder: Path, count: int = 4) -> Path:
    """``count`` small pictures of a red square-headed figure on varied backgrounds and sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(48, 48), (64, 40), (40, 64), (56, 56)]
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        image = Image.new("RGB", (w, h), (40 * i % 255, 120, 200 - 30 * i))
        draw = ImageDraw.Draw(image)
        draw.rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=(220, 30, 30))
        draw.ellipse([w // 3, h // 8, 2 * w // 3, h // 3], fill=(250, 220, 0))
        image.save(folder / f"figure_{i}.png")
    return folder


def tiny_config(tmp_path: Path, **overrides) -> TrainConfig:
    """A run that takes a few seconds on the built-in tiny SDXL."""
    options = dict(
        pretrained_model_name_or_path="builtin:tiny-sdxl",
        instance_dir=str(draw_subject(tmp_path / "figure")),
        resolution=32,
        rank=2,
        dash_directions=3,
        dash_warmup_steps=2,
        max_train_steps=4,
        learning_rate=1e-3,
        checkpointing_steps=1000,
        output_dir=str(tmp_path / "out"),
        seed=0,
    )
    options.update(overrides)
    return TrainConfig(**options)


def assert_same_files(a: Path, b: Path, atol: float = 1e-6) -> None:
    """Every tensor of the three adapter files of ``a`` equals ``b``'s within ``atol``."""
    for name in ("pytorch_lora_weights.safetensors", "lora_dash_kohya.safetensors", "dash_adapter.safetensors"):
        left, right = load_file(str(a / name)), load_file(str(b / name))
        assert left.keys() == right.keys(), name
        for key in left:
            if left[key].is_floating_point():
                assert torch.allclose(left[key], right[key], atol=atol, rtol=0), f"{name}:{key} differs by {(left[key] - right[key]).abs().max()}"
            else:
                assert torch.equal(left[key], right[key]), f"{name}:{key}"


class Killed(Exception):
    """Stands for the process being killed right after a checkpoint."""


def killed_then_resumed(monkeypatch, folder: Path, stop_at: int, **options) -> Path:
    """Train in ``folder`` until the checkpoint of step ``stop_at`` is saved, "kill" the run there, then
    resume it with ``resume_from_checkpoint="latest"``; returns the resumed run's output folder."""
    import pytest

    import dash_diffusion.training.train as train_module

    real_save = train_module.save_checkpoint

    def save_then_die(accelerator, output_dir, step, state, total_limit):
        path = real_save(accelerator, output_dir, step, state, total_limit)
        if step == stop_at:
            raise Killed
        return path

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train_module.train(tiny_config(folder, **options))
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    return train_module.train(tiny_config(folder, resume_from_checkpoint="latest", **options))
