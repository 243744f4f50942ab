"""The command line: help, one-line errors with non-zero exit, and a real 2-process accelerate launch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from train_helpers import draw_subject

from dash_diffusion import read_native_adapter
from dash_diffusion.training.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train_dreambooth_dash.py"


def test_help_lists_every_option_group(capsys):
    text = build_parser().format_help()
    for option in ("--instance_dir", "--instance_data_dir", "--dash_warmup_steps", "--dash_directions", "--no_dash", "--with_prior_preservation", "--mixed_precision", "--resume_from_checkpoint", "--no_cache_latents", "--bucketing", "--use_8bit_adam"):
        assert option in text


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    (empty / "broken.jpg").write_text("not a jpeg either")
    cases = [
        ([], "--instance_dir"),
        (["--instance_dir", str(empty), "--pretrained_model_name_or_path", "builtin:tiny-sdxl", "--output_dir", str(tmp_path / "o")], "no usable images"),
        (["--instance_dir", str(empty), "--mixed_precision", "fp8"], "--mixed_precision"),
        (["--instance_dir", str(empty), "--rank", "0"], "rank"),
        (["--instance_dir", str(draw_subject(tmp_path / "figure")), "--pretrained_model_name_or_path", "builtin:nope"], "builtin:tiny-sdxl"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: ") and expected in last, err
        assert "Traceback" not in err


def test_accelerate_launch_two_processes(tmp_path):
    images = draw_subject(tmp_path / "figure")
    out = tmp_path / "out"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(SCRIPT), "--pretrained_model_name_or_path", "builtin:tiny-sdxl", "--instance_dir", str(images),
        "--resolution", "32", "--rank", "2", "--dash_directions", "3", "--dash_warmup_steps", "2", "--max_train_steps", "4",
        "--checkpointing_steps", "2", "--output_dir", str(out),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = read_native_adapter(out / "dash_adapter.safetensors").metadata
    assert meta["world_size"] == 2, "accelerate started one process only"
    assert meta["selected_at_step"] == 2
    assert (out / "checkpoint-4" / "random_states_1.pkl").is_file()  # rank 1 took part in checkpointing
