"""benchmarks/mini_subject_reach.py: full-rank fine-tuning of a chosen subset of the mini UNet's weights."""

from __future__ import annotations

import re

import torch
from benchmark_loader import load_benchmark


def test_fine_tuning_changes_exactly_the_chosen_subset():
    from diffusers import StableDiffusionXLPipeline

    from dash_diffusion.models.builtin import resolve_model_path

    reach = load_benchmark("mini_subject_reach")
    torch.set_num_threads(1)
    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path("builtin:mini-sdxl"))
    pipe.unet.float()
    before = {name: tensor.clone() for name, tensor in pipe.unet.state_dict().items()}
    pattern = reach.SUBSETS["attention+16px"]
    count = reach.fine_tune(pipe, pattern, reach.sample_photos()[:2], steps=1, learning_rate=1e-3, seed=0)
    after = pipe.unet.state_dict()
    chosen = {name for name in before if re.search(pattern, name)}
    assert count == sum(before[name].numel() for name in chosen)
    assert all(torch.equal(before[name], after[name]) for name in before if name not in chosen)
    weights = [name for name in chosen if name.endswith("weight") and "norm" not in name]
    assert any(name.startswith("down_blocks.0.resnets") for name in weights) and any(".attn2.to_k." in name for name in weights)
    assert all(not torch.equal(before[name], after[name]) for name in weights)


def test_benchmark_writes_a_row_per_subset_under_its_marker(tmp_path):
    reach = load_benchmark("mini_subject_reach")
    markdown = tmp_path / "results.md"
    markdown.write_text("<!-- mini_subject_reach:start -->\n<!-- mini_subject_reach:end -->\n")
    assert reach.main(["--steps", "1", "--seeds", "1", "--subset", "attention", "--markdown", str(markdown), "--grid", str(tmp_path / "grid.png")]) == 0
    rows = [line for line in markdown.read_text().splitlines() if line.startswith("| builtin:mini-sdxl | attention |")]
    assert len(rows) == 1
    assert -1.0 <= float(rows[0].split("|")[-2]) <= 1.0  # an instance cosine
    assert (tmp_path / "grid.png").is_file()
