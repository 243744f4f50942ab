"""benchmarks/mini_pretrain_step.py: both precisions are timed on the real UNet stage and the report lands
under its marker."""

from __future__ import annotations

import pytest
import torch
from benchmark_loader import load_benchmark


def test_a_small_run_times_both_precisions_and_writes_its_section(tmp_path, capsys):
    torch.set_num_threads(1)
    bench = load_benchmark("mini_pretrain_step")
    markdown = tmp_path / "bench.md"
    markdown.write_text("# results\n")
    assert bench.main(["--device", "cpu", "--batch", "2", "--steps", "1", "--repeats", "2", "--images", "4", "--markdown", str(markdown)]) == 0
    text = markdown.read_text()
    assert "<!-- mini_pretrain_step:start -->" in text and "<!-- mini_pretrain_step:end -->" in text
    assert "| float32 (`--mixed_precision no`) |" in text and "| bfloat16 autocast (`--mixed_precision bf16`) |" in text
    drift = float(text.split("bfloat16 moves the UNet's prediction by ")[1].split(" ")[0])
    assert 0.0 < drift < 0.1  # bf16 changes the prediction, a little
    assert "repeat 2/2" in capsys.readouterr().out


def test_bad_sizes_are_refused_in_one_line(capsys):
    bench = load_benchmark("mini_pretrain_step")
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--steps", "0"])
    assert exit_info.value.code == 2 and "must be at least 1" in capsys.readouterr().err
