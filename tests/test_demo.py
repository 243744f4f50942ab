"""``make demo``'s launch command: its flags mean exactly the options the demo (and its test) train with."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dash_diffusion import demo
from dash_diffusion.training.cli import parse_config
from dash_diffusion.training.train_config import TrainConfig


@pytest.mark.parametrize("prior", [False, True])
@pytest.mark.parametrize("model", sorted(demo.MODELS))
def test_launch_flags_parse_to_the_demo_options(tmp_path: Path, model: str, prior: bool) -> None:
    class_dir = tmp_path / "out" / "class_images" if prior else None
    command = demo.training_command(tmp_path / "out", 30, 10, model, class_dir)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    script = command.index(str(demo.ROOT / "train_dreambooth_dash.py"))
    parsed = parse_config(command[script + 1 :])
    assert parsed == TrainConfig(**demo.training_options(tmp_path / "out", 30, 10, model, class_dir))
    assert parsed.resolution == demo.MODELS[model] and parsed.center_crop
    assert parsed.with_prior_preservation == prior and parsed.class_dir == (str(class_dir) if prior else None)


def test_class_images_are_written_at_the_models_resolution(tmp_path: Path) -> None:
    folder = demo.write_class_images(tmp_path, "builtin:tiny-sdxl")
    pictures = sorted(folder.glob("*.png"))
    assert len(pictures) == demo.CLASS_IMAGES and Image.open(pictures[0]).size == (64, 64)


def test_prompt_pairs_differ_only_by_the_identifier() -> None:
    for base, adapter in demo.prompt_pairs():
        assert base.replace("a robot", "sks robot") == adapter
