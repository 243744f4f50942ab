"""``make demo``'s launch command: its flags mean exactly the options the demo (and its test) train with."""

from __future__ import annotations

from pathlib import Path

import pytest

from dash_diffusion import demo
from dash_diffusion.training.cli import parse_config
from dash_diffusion.training.train_config import TrainConfig


@pytest.mark.parametrize("model", sorted(demo.MODELS))
def test_launch_flags_parse_to_the_demo_options(tmp_path: Path, model: str) -> None:
    command = demo.training_command(tmp_path / "out", 30, 10, model)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    script = command.index(str(demo.ROOT / "train_dreambooth_dash.py"))
    parsed = parse_config(command[script + 1 :])
    assert parsed == TrainConfig(**demo.training_options(tmp_path / "out", 30, 10, model))
    assert parsed.resolution == demo.MODELS[model] and parsed.center_crop


def test_prompt_pairs_differ_only_by_the_identifier() -> None:
    for base, adapter in demo.prompt_pairs():
        assert base.replace("a robot", "sks robot") == adapter
