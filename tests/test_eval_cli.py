"""evaluate_dreambooth.py: options, one-line errors with exit status 2, a small successful run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dash_helpers import perturb_adapter
from PIL import Image

from dash_diffusion import DashConfig, inject_dash, save_adapter
from dash_diffusion.eval.cli import build_parser, main, parse_config
from dash_diffusion.eval.tiny_features import save_tiny_clip, save_tiny_dino
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _photos(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, colour in enumerate([(200, 40, 40), (40, 200, 40)]):
        Image.new("RGB", (48 + 8 * i, 40), colour).save(folder / f"{i:02d}.jpg")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    pipe = build_tiny_sdxl_pipeline()
    inject_dash(pipe.unet, DashConfig(rank=2, num_directions=2))
    perturb_adapter(pipe.unet, seed=3, scale=0.1)
    save_adapter(root / "adapter", pipe.unet)
    return {
        "subject": _photos(root / "teapot"),
        "adapter": root / "adapter",
        "dino": save_tiny_dino(root / "dino"),
        "clip": save_tiny_clip(root / "clip"),
    }


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_options_map_onto_the_config(tmp_path):
    config = parse_config(["--subject_dir", str(tmp_path), "--adapter", "dash=out/dog", "--adapter", "lora=out/dog_nodash", "--prompts", "5", "--kind", "live", "--num_images", "2", "--no_base", "--reference", "lora"])
    assert config.adapters == [("dash", "out/dog"), ("lora", "out/dog_nodash")]
    assert (config.prompts, config.kind, config.num_images, config.no_base, config.reference) == ("5", "live", 2, True, "lora")
    assert config.rows() == [("dash", "out/dog"), ("lora", "out/dog_nodash")] and config.reference_row() == "lora"
    defaults = parse_config(["--subject_dir", str(tmp_path)])
    assert (defaults.dino_model, defaults.clip_model, defaults.token, defaults.clip_t_text) == ("facebook/dino-vits16", "openai/clip-vit-base-patch32", "sks", "class")
    assert (defaults.steps, defaults.guidance, defaults.resolution, defaults.num_images, defaults.seed) == (50, 5.0, 1024, 4, 0)
    help_text = build_parser().format_help()
    for option in ("--base", "--adapter", "--no_base", "--subject_dir", "--class_name", "--token", "--kind", "--num_images", "--prompts", "--steps", "--guidance", "--resolution", "--seed", "--dino_model", "--clip_model", "--device", "--dtype", "--output_dir"):
        assert option in help_text, option


def test_bad_subject_dir_is_one_line(tmp_path, capsys):
    assert main(["--subject_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "out")]) == 2
    assert "--subject_dir" in _one_error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["--subject_dir", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "out")]) == 2
    assert "no readable images" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_missing_feature_model_offline_is_one_line(tmp_path, capsys, setup):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    argv = ["--subject_dir", str(setup["subject"]), "--base", "builtin:tiny-sdxl", "--output_dir", str(tmp_path / "out"), "--clip_model", str(setup["clip"])]
    assert main([*argv, "--dino_model", "dash-diffusion-tests/missing-dino"]) == 2
    line = _one_error_line(capsys)
    assert "cannot load the DINO model 'dash-diffusion-tests/missing-dino'" in line and "--dino_model models/missing-dino" in line
    assert main([*argv, "--dino_model", str(tmp_path / "models" / "dino")]) == 2
    assert "--dino_model folder" in _one_error_line(capsys)


def test_missing_adapter_and_bad_adapter_spec(tmp_path, capsys, setup):
    argv = ["--subject_dir", str(setup["subject"]), "--output_dir", str(tmp_path / "out")]
    assert main([*argv, "--adapter", f"dash={tmp_path / 'nothing'}"]) == 2
    assert "does not exist" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--adapter", "just-a-path"])
    assert exit_info.value.code == 2 and "NAME=PATH" in capsys.readouterr().err


def test_small_run_succeeds(tmp_path, capsys, setup):
    out = tmp_path / "out"
    argv = [
        "--subject_dir", str(setup["subject"]), "--base", "builtin:tiny-sdxl", "--adapter", f"dash={setup['adapter']}",
        "--prompts", "1", "--num_images", "1", "--steps", "1", "--resolution", "32", "--grid_cell", "32", "--device", "cpu",
        "--dino_model", str(setup["dino"]), "--clip_model", str(setup["clip"]), "--output_dir", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    assert "results written to" in capsys.readouterr().out
    scores = (out / "scores.csv").read_text(encoding="utf-8").splitlines()
    assert len(scores) == 1 + 2 and scores[1].startswith("base,0,0,0,a sks teapot in the jungle,a teapot in the jungle,")
    assert "object prompts" in (out / "results.md").read_text(encoding="utf-8")
    assert main(argv) == 2 and "--overwrite" in _one_error_line(capsys)
    assert main([*argv, "--overwrite"]) == 0


def test_script_exits_2_with_one_line(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(ROOT / "evaluate_dreambooth.py"), "--subject_dir", str(tmp_path / "nope")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --subject_dir") and "real photos" in lines[0]
