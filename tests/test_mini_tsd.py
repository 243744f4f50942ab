"""TSD analysis math on constructed matrices, the trainer property the mini_tsd benchmark relies on, and
its ``--quick`` run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from benchmark_loader import load_benchmark
from diffusers import UNet2DConditionModel

from dash_diffusion.formats.native import read_native_adapter
from dash_diffusion.lora_dash import tsd_analysis as tsd
from dash_diffusion.lora_dash.directions import (
    batched_svd,
    lora_change_rates,
    usable_directions,
)
from dash_diffusion.models.builtin import resolve_model_path
from dash_diffusion.training.train import train
from tests.train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def orthogonal(size: int, generator: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(size, size, generator=generator))[0]


def weight_with_spectrum(sigma: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W, U, V)`` with ``W = U diag(sigma) V^T`` for random orthogonal U, V (sigma descending)."""
    U, V = orthogonal(sigma.numel(), generator), orthogonal(sigma.numel(), generator)
    return U @ torch.diag(sigma) @ V.T, U, V


def test_update_on_known_directions_is_found_exactly() -> None:
    generator = torch.Generator().manual_seed(0)
    k, known = 40, [5, 22, 31, 36]
    sigma = torch.linspace(2.0, 0.1, k)
    W, U, V = weight_with_spectrum(sigma, generator)
    update = sum(0.05 * (1 + j) * torch.outer(U[:, p], V[:, p]) for j, p in enumerate(known))
    svd = batched_svd({"w": W})["w"]

    rates = tsd.change_rates(svd, update)
    expected = torch.zeros(k)
    expected[known] = torch.tensor([0.05 * (1 + j) for j in range(len(known))]) / sigma[known]
    torch.testing.assert_close(rates, expected, atol=1e-4, rtol=1e-3)
    chosen = tsd.top_set(rates, usable_directions(svd), len(known))
    assert sorted(chosen) == known
    assert tsd.overlap(chosen, known) == 1.0
    assert tsd.spectrum_positions(known, k) == [p / (k - 1) for p in known]
    assert tsd.mass_count(rates, 0.999) == len(known)  # the other rates are float32 noise
    # the update lies wholly on core directions: its diagonal energy is its whole Frobenius energy
    assert tsd.diagonal_energy(svd, update).sum().item() == pytest.approx(update.square().sum().item(), rel=1e-4)
    assert tsd.captured_mass(rates, chosen, known) == pytest.approx(1.0)


def test_change_rates_of_a_lora_update_equal_the_trainers() -> None:
    generator = torch.Generator().manual_seed(1)
    W = torch.randn(24, 16, generator=generator)
    A, B = torch.randn(4, 16, generator=generator), torch.randn(24, 4, generator=generator)
    svd = batched_svd({"w": W})["w"]
    torch.testing.assert_close(tsd.change_rates(svd, 0.5 * B @ A), lora_change_rates(svd, A, B, 0.5), rtol=1e-4, atol=1e-6)


def test_random_updates_overlap_at_chance_on_a_flat_spectrum() -> None:
    # with equal singular values 1/sigma_i favours no direction, so the top-s of two independent random
    # updates share s / k of their directions on average
    generator = torch.Generator().manual_seed(2)
    k, s, trials = 32, 4, 400
    W, _, _ = weight_with_spectrum(torch.ones(k), generator)
    svd = batched_svd({"w": W})["w"]
    usable = usable_directions(svd)
    values = []
    for _ in range(trials):
        first = tsd.top_set(tsd.change_rates(svd, tsd.random_update(k, k, 4, generator)), usable, s)
        second = tsd.top_set(tsd.change_rates(svd, tsd.random_update(k, k, None, generator)), usable, s)
        values.append(tsd.overlap(first, second))
    assert tsd.chance_overlap(s, k) == s / k
    assert sum(values) / trials == pytest.approx(s / k, abs=0.04)


def test_unusable_directions_get_no_rate_and_no_energy() -> None:
    generator = torch.Generator().manual_seed(3)
    W = torch.randn(12, 3, generator=generator) @ torch.randn(3, 12, generator=generator)  # rank 3
    svd = batched_svd({"w": W})["w"]
    update = torch.randn(12, 12, generator=generator)
    assert int(usable_directions(svd).sum()) == 3
    assert torch.count_nonzero(tsd.change_rates(svd, update)[3:]) == 0
    assert torch.count_nonzero(tsd.diagonal_energy(svd, update)[3:]) == 0


def test_counts_shares_and_quantiles() -> None:
    values = torch.tensor([1.0, 4.0, 2.0, 3.0])
    assert [tsd.mass_count(values, q) for q in (0.1, 0.5, 0.7, 0.9, 1.0)] == [1, 2, 2, 3, 4]
    assert tsd.mass_count(torch.zeros(5), 0.5) == 0
    assert tsd.band_shares([0.0, 0.49, 0.5, 0.94, 0.95, 1.0]) == pytest.approx((2 / 6, 2 / 6, 2 / 6))
    assert tsd.histogram([0.0, 0.05, 0.5, 1.0], bins=4) == [0.5, 0.0, 0.25, 0.25]
    assert tsd.quantiles([1.0, 2.0, 3.0], (0.0, 0.5, 1.0)) == [1.0, 2.0, 3.0]
    assert tsd.overlap([3, 1, -1], [1, 2]) == 0.5
    assert tsd.captured_mass(torch.tensor([0.0, 2.0, 1.0, 1.0]), [2, 3], [1, 2]) == pytest.approx(2 / 3)


def test_dash_selection_at_t_is_the_top_s_of_the_plain_run_after_t_steps(tmp_path: Path) -> None:
    # mini_tsd takes a Dash run's selection as "the top-s of plain LoRA's dW after t steps": the two runs
    # must be the same computation up to step t
    t = 2
    train(tiny_config(tmp_path / "dash", dash_warmup_steps=t, max_train_steps=t + 1))
    train(tiny_config(tmp_path / "plain", no_dash=True, max_train_steps=t))
    dash = read_native_adapter(tmp_path / "dash" / "out" / "dash_adapter.safetensors").modules["unet"]
    plain = read_native_adapter(tmp_path / "plain" / "out" / "dash_adapter.safetensors").modules["unet"]
    unet = UNet2DConditionModel.from_pretrained(resolve_model_path("builtin:tiny-sdxl"), subfolder="unet")
    assert dash.keys() == plain.keys()
    for name, tensors in dash.items():
        svd = batched_svd({"w": unet.get_submodule(name).weight})["w"]
        expected = lora_change_rates(svd, plain[name]["lora_A.weight"], plain[name]["lora_B.weight"], 1.0)
        # equal up to the float32 SVD (the trainer decomposes weights stacked by shape, here one at a time)
        torch.testing.assert_close(tensors["dash_change_rate"], expected, rtol=1e-3, atol=1e-5 * expected.max().item())
        chosen = tsd.top_set(expected, usable_directions(svd), tensors["dash_indices"].numel())
        assert tensors["dash_indices"][tensors["dash_indices"] >= 0].tolist() == chosen


def test_quick_run_end_to_end_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mini_tsd = load_benchmark("mini_tsd")
    out, markdown = tmp_path / "tsd", tmp_path / "results.md"
    assert mini_tsd.main(["--quick", "--out", str(out), "--markdown", str(markdown)]) == 0
    saved = sorted(p.name for p in (out / "results").glob("*.json"))
    assert saved == ["mini-dash-t3-r4-s8-12steps-seed0.json", "mini-dash-t6-r4-s8-12steps-seed0.json", "mini-lora-r4-s8-12steps-seed0.json"]
    lora = json.loads((out / "results" / saved[2]).read_text())
    assert len(lora["layers"]) == 8 and lora["timing"]["wall_seconds"] > 0
    text = markdown.read_text()
    assert "<!-- mini_tsd:start -->" in text and "Command:" in text
    assert text.count("| the dW after t steps predicts the final TSD (key finding) | mini-sdxl |") == 2
    assert "| TSD sit at small-but-not-the-smallest singular values | mini-sdxl |" in text
    capsys.readouterr()

    assert mini_tsd.main(["--quick", "--out", str(out)]) == 0  # resumes: nothing is trained again
    printed = capsys.readouterr().out
    assert printed.count("(skipped)") == 3 and "3 of the 3 runs were saved by an earlier invocation" in printed


def test_report_names_every_kind_of_transformer_linear():
    # Bug: once the study trained the demo's targets (every transformer linear), its per-layer table named the
    # feed-forward layers "proj" and "2" (the last part of their module names).
    report = load_benchmark("mini_tsd_report")
    block = "down_blocks.1.attentions.0.transformer_blocks.0"
    names = {f"{block}.attn2.to_k": "attn2.to_k", f"{block}.attn1.to_out.0": "attn1.to_out.0", f"{block}.ff.net.0.proj": "ff.net.0.proj",
             f"{block}.ff.net.2": "ff.net.2", "down_blocks.1.attentions.0.proj_in": "proj_in", "mid_block.attentions.0.proj_out": "proj_out"}
    assert {name: report.projection_kind(name) for name in names} == names
