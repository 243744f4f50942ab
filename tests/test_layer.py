"""DashLinear: exactness of the factored forward, merge semantics, gradients before/after selection."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dash_diffusion import DashLinear
from dash_diffusion.lora_dash.directions import Selection


def make_layer(out_features=24, in_features=16, rank=4, s=3, seed=0, bias=True) -> DashLinear:
    torch.manual_seed(seed)
    return DashLinear(nn.Linear(in_features, out_features, bias=bias), rank=rank, alpha=8.0, num_directions=s)


def trained(layer: DashLinear, seed: int = 1) -> DashLinear:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g))
        layer.select_directions()
        layer.dash_delta.copy_(torch.randn(layer.dash_delta.shape, generator=g))
    return layer


def test_zero_init_output_equals_base_exactly():
    layer = make_layer()
    x = torch.randn(5, 7, 16)
    assert torch.equal(layer(x), layer.base_layer(x))


def test_forward_equals_dense_formula():
    layer = trained(make_layer())
    x = torch.randn(3, 16)
    W, b = layer.base_layer.weight, layer.base_layer.bias
    dense = W + layer.scaling * layer.lora_B.weight @ layer.lora_A.weight
    dense = dense + layer.dash_U @ torch.diag(layer.dash_delta) @ layer.dash_V.T
    torch.testing.assert_close(layer(x), x @ dense.T + b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.delta_weight(), dense - W, atol=1e-5, rtol=1e-5)


def test_merged_equals_unmerged_and_unmerge_restores():
    layer = trained(make_layer())
    x = torch.randn(4, 16)
    original = layer.base_layer.weight.clone()
    unmerged = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer(x), unmerged, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, original, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer(x), unmerged, atol=1e-6, rtol=0)


def test_dash_delta_gradient_is_exactly_zero_before_selection_and_nonzero_after():
    layer = make_layer()
    with torch.no_grad():
        layer.lora_B.weight.normal_()
    x = torch.randn(6, 16)
    layer(x).pow(2).sum().backward()
    assert layer.dash_delta.grad is not None
    assert torch.equal(layer.dash_delta.grad, torch.zeros_like(layer.dash_delta))
    assert layer.lora_A.weight.grad.abs().sum() > 0
    layer.zero_grad()
    layer.select_directions()
    layer(x).pow(2).sum().backward()
    assert layer.dash_delta.grad.abs().min() > 0


def test_base_weight_is_frozen_and_only_adapter_trains():
    layer = make_layer()
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A.weight", "lora_B.weight", "dash_delta"}
    assert {n for n, _ in layer.named_buffers()} == {"dash_U", "dash_V", "dash_indices", "dash_change_rate"}


def test_fp32_adapter_under_bf16_autocast():
    layer = trained(make_layer())
    x = torch.randn(4, 16)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    assert layer.lora_A.weight.dtype == torch.float32 and layer.lora_A.weight.grad.dtype == torch.float32
    assert layer.dash_delta.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)


def test_half_precision_base_without_autocast_keeps_dtypes():
    layer = trained(make_layer())
    layer.base_layer.to(torch.bfloat16)
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    out = layer(x)
    assert out.dtype == torch.bfloat16
    assert layer.lora_B.weight.dtype == torch.float32


def test_set_directions_rejects_wrong_shapes():
    layer = make_layer(s=3)
    bad = Selection(U_s=torch.zeros(24, 2), V_s=torch.zeros(16, 3), indices=torch.zeros(3, dtype=torch.long), change_rates=torch.zeros(16))
    with pytest.raises(ValueError, match="U_s"):
        layer.set_directions(bad)


def test_plain_lora_when_no_directions():
    layer = make_layer(s=0)
    with torch.no_grad():
        layer.lora_B.weight.normal_()
    x = torch.randn(2, 16)
    expected = layer.base_layer(x) + layer.scaling * x @ layer.lora_A.weight.T @ layer.lora_B.weight.T
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    assert layer.select_directions().indices.numel() == 0


def test_gaussian_init_matches_peft_std_one_over_rank():
    # bug: lora_A was Kaiming-uniform while the paper's SDXL code and diffusers' SDXL DreamBooth script use
    # PEFT's init_lora_weights="gaussian", A ~ N(0, 1/r): at r = 4 the initial A was 11-20x smaller.
    torch.manual_seed(0)
    layer = DashLinear(nn.Linear(2048, 64), rank=4, alpha=4.0, num_directions=2)  # gaussian is the default
    A = layer.lora_A.weight
    # 8192 draws: standard errors 0.002 (std) and 0.003 (mean); the tolerances are about 4-5 of them
    assert abs(A.std().item() - 1 / 4) < 0.0075 and abs(A.mean().item()) < 0.015
    assert torch.equal(layer.lora_B.weight, torch.zeros_like(layer.lora_B.weight))


def test_kaiming_init_is_unchanged():
    torch.manual_seed(3)
    layer = DashLinear(nn.Linear(640, 32), rank=4, alpha=4.0, num_directions=2, init_lora_weights="kaiming")
    torch.manual_seed(3)  # the former init, step by step: base layer, both factors, then A re-drawn
    nn.Linear(640, 32)
    A, B = nn.Linear(640, 4, bias=False), nn.Linear(4, 32, bias=False)
    nn.init.kaiming_uniform_(A.weight, a=math.sqrt(5))
    assert torch.equal(layer.lora_A.weight, A.weight)
    assert torch.equal(layer.lora_B.weight, torch.zeros_like(layer.lora_B.weight))
    assert layer.lora_A.weight.abs().max() <= 1 / math.sqrt(640)  # U(-1/sqrt(in), 1/sqrt(in))


def test_unknown_init_is_rejected():
    with pytest.raises(ValueError, match="init_lora_weights"):
        DashLinear(nn.Linear(8, 8), rank=2, alpha=2.0, num_directions=1, init_lora_weights="orthogonal")
