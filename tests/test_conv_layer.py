"""DashConv2d: the LoRA-Dash update of a convolution, read as its (out x in*kh*kw) weight matrix, is exactly the
convolution with ``W + Delta W``; directions come from that matrix's SVD; injection wraps Conv2d by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dash_diffusion import (
    DashConfig,
    DashConv2d,
    DashError,
    dash_layers,
    inject_dash,
    select_directions,
    unwrap_dash,
)
from dash_diffusion.lora_dash.directions import batched_svd

CONVOLUTIONS = {
    "3x3 same": {"in_channels": 6, "out_channels": 10, "kernel_size": 3, "padding": 1},
    "3x3 stride 2": {"in_channels": 6, "out_channels": 10, "kernel_size": 3, "stride": 2, "padding": 1},
    "1x1 shortcut": {"in_channels": 6, "out_channels": 10, "kernel_size": 1},
    "dilated 2x3": {"in_channels": 6, "out_channels": 4, "kernel_size": (2, 3), "dilation": 2, "padding": (1, 2)},
}


def trained_conv(spec: dict, rank: int = 3, s: int = 4, seed: int = 0) -> DashConv2d:
    """A DashConv2d with non-zero ``B``, selected directions and non-zero scales."""
    torch.manual_seed(seed)
    layer = DashConv2d(nn.Conv2d(**spec), rank=rank, alpha=6.0, num_directions=s)
    with torch.no_grad():
        layer.lora_B.weight.normal_()
        layer.select_directions()
        layer.dash_delta.normal_()
    return layer


def dense_update(layer: DashConv2d) -> torch.Tensor:
    """``(alpha/r) B A + U_s diag(delta) V_s^T`` built from the parameters by hand, as an (out, in, kh, kw) kernel."""
    lora_A = layer.lora_A.weight.flatten(1)
    lora_B = layer.lora_B.weight.flatten(1)
    matrix = layer.scaling * lora_B @ lora_A + layer.dash_U @ torch.diag(layer.dash_delta) @ layer.dash_V.T
    return matrix.view_as(layer.base_layer.weight)


@pytest.mark.parametrize("name", CONVOLUTIONS)
def test_forward_equals_convolution_with_updated_kernel(name):
    layer = trained_conv(CONVOLUTIONS[name])
    base = layer.base_layer
    x = torch.randn(2, 6, 9, 11)
    expected = F.conv2d(x, base.weight + dense_update(layer), base.bias, base.stride, base.padding, base.dilation)
    torch.testing.assert_close(layer(x), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layer.delta_weight().view_as(base.weight), dense_update(layer), atol=1e-5, rtol=1e-5)


def test_zero_init_is_the_base_convolution_exactly():
    torch.manual_seed(0)
    layer = DashConv2d(nn.Conv2d(4, 8, 3, padding=1), rank=2, alpha=2.0, num_directions=2)
    x = torch.randn(1, 4, 6, 6)
    assert torch.equal(layer(x), layer.base_layer(x))


def test_merge_and_unmerge():
    layer = trained_conv(CONVOLUTIONS["3x3 stride 2"])
    x = torch.randn(1, 6, 8, 8)
    adapted = layer(x)
    original = layer.base_layer.weight.clone()
    layer.merge()
    torch.testing.assert_close(layer(x), adapted, atol=1e-4, rtol=1e-4)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, original, atol=1e-6, rtol=0)


def test_directions_come_from_the_svd_of_the_weight_matrix():
    layer = trained_conv(CONVOLUTIONS["3x3 same"], s=3)
    W = layer.base_layer.weight.flatten(1)  # (10, 54)
    svd = batched_svd({"w": W})["w"]
    lora_update = layer.scaling * layer.lora_B.weight.flatten(1) @ layer.lora_A.weight.flatten(1)
    rates = torch.stack([(svd.U[:, i] @ lora_update @ svd.Vh[i]).abs() / svd.S[i] for i in range(len(svd.S))])
    torch.testing.assert_close(layer.dash_change_rate, rates, atol=1e-5, rtol=1e-4)
    chosen = torch.argsort(rates, descending=True)[:3]
    assert sorted(layer.dash_indices.tolist()) == sorted(chosen.tolist())
    for slot, index in enumerate(layer.dash_indices.tolist()):
        # singular vectors are defined up to a common sign
        sign = torch.sign(layer.dash_U[:, slot] @ svd.U[:, index])
        torch.testing.assert_close(layer.dash_U[:, slot] * sign, svd.U[:, index], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(layer.dash_V[:, slot] * sign, svd.Vh[index], atol=1e-5, rtol=1e-4)


def test_gradients_reach_the_kernels_and_the_scales():
    layer = trained_conv(CONVOLUTIONS["3x3 same"])
    layer(torch.randn(2, 6, 5, 5)).square().mean().backward()
    for parameter in (layer.lora_A.weight, layer.lora_B.weight, layer.dash_delta):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    assert layer.base_layer.weight.grad is None


class Block(nn.Module):
    """A resnet-like block: two 3x3 convolutions, a 1x1 shortcut, a time projection and a grouped conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.time_emb_proj = nn.Linear(5, 8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(4, 8, 1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.conv1(x) + self.time_emb_proj(t)[:, :, None, None]))
        return self.conv_shortcut(x) + h


def test_inject_wraps_convolutions_and_linears_by_name_and_selects_their_directions():
    torch.manual_seed(0)
    model = Block()
    x, t = torch.randn(2, 4, 6, 6), torch.randn(2, 5)
    before = model(x, t)
    names = inject_dash(model, DashConfig(rank=2, num_directions=2, target_modules=("conv1", "conv2", "conv_shortcut", "time_emb_proj")))
    assert names == ["conv1", "time_emb_proj", "conv2", "conv_shortcut"]
    assert isinstance(model.conv1, DashConv2d) and isinstance(model.conv_shortcut, DashConv2d)
    assert torch.equal(model(x, t), before)
    with torch.no_grad():
        for layer in dash_layers(model).values():
            layer.lora_B.weight.normal_()
    summary = select_directions(model)
    assert set(summary) == set(names) and all(len(entry["indices"]) == 2 for entry in summary.values())
    with torch.no_grad():
        for layer in dash_layers(model).values():
            layer.dash_delta.normal_()
    adapted = model(x, t)
    unwrap_dash(model, merge=True)
    torch.testing.assert_close(model(x, t), adapted, atol=1e-4, rtol=1e-4)


def test_grouped_convolution_is_refused_by_name():
    with pytest.raises(DashError, match=r"module 'depthwise' cannot carry LoRA-Dash .*groups=8.*drop it from target_modules"):
        inject_dash(Block(), DashConfig(target_modules=("depthwise",)))
