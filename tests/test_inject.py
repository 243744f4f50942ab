"""Injection by qualified-name suffix, trainable parameters, unwrap."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dash_diffusion import DashConfig, DashError, DashLinear, inject_dash, trainable_parameters, unwrap_dash
from dash_diffusion.lora_dash.inject import matches_target


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.to_q, self.to_k, self.add_q_proj = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.to_out = nn.ModuleList([nn.Linear(8, 8), nn.Dropout(0.0)])

    def forward(self, x):
        return self.to_out[0](self.to_q(x) + self.to_k(x) + self.add_q_proj(x))


def test_suffix_matching_respects_name_boundaries():
    assert matches_target("blocks.0.attn1.to_out.0", ("to_out.0",))
    assert matches_target("to_q", ("to_q",))
    assert not matches_target("blocks.0.attn1.add_q_proj", ("q_proj",))
    assert not matches_target("blocks.0.attn1.to_qx", ("to_q",))


def test_inject_wraps_targets_freezes_model_and_unwrap_restores():
    torch.manual_seed(0)
    model = nn.Sequential(Attention(), Attention())
    x = torch.randn(3, 8)
    before = model(x)
    names = inject_dash(model, DashConfig(rank=2, num_directions=2))
    assert names == [f"{i}.{m}" for i in (0, 1) for m in ("to_q", "to_k", "to_out.0")]
    assert all(isinstance(model.get_submodule(n), DashLinear) for n in names)
    assert isinstance(model[0].add_q_proj, nn.Linear) and not model[0].add_q_proj.weight.requires_grad
    params = trainable_parameters(model)
    assert len(params) == 3 * len(names)
    assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in params}
    assert torch.equal(model(x), before)
    assert unwrap_dash(model) == names
    assert not any(isinstance(m, DashLinear) for m in model.modules())
    assert torch.equal(model(x), before)


def test_unwrap_with_merge_keeps_the_update():
    torch.manual_seed(1)
    model = nn.Sequential(Attention())
    inject_dash(model, DashConfig(rank=2, num_directions=2))
    with torch.no_grad():
        for p in trainable_parameters(model):
            p.normal_()
    x = torch.randn(3, 8)
    adapted = model(x)
    unwrap_dash(model, merge=True)
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-5)


def test_clear_errors_for_no_match_and_double_injection():
    model = nn.Sequential(Attention())
    with pytest.raises(DashError, match="no nn.Linear or nn.Conv2d module matches"):
        inject_dash(model, DashConfig(target_modules=("q_proj",)))
    inject_dash(model, DashConfig())
    with pytest.raises(DashError, match="already has LoRA-Dash layers"):
        inject_dash(model, DashConfig())


@pytest.mark.parametrize("kwargs", [{"rank": 0}, {"dropout": 1.0}, {"num_directions": -1}, {"alpha": 0}, {"target_modules": ()}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(DashError):
        DashConfig(**kwargs)


def test_config_parses_comma_separated_targets():
    assert DashConfig(target_modules="to_q, to_k").target_modules == ("to_q", "to_k")
    assert DashConfig(rank=8).lora_alpha == 8.0


def test_config_init_lora_weights_reaches_every_layer_and_is_recorded():
    # bug: inject_dash always drew lora_A Kaiming-uniform; the config now chooses, "gaussian" by default
    assert DashConfig().init_lora_weights == "gaussian"
    assert DashConfig(init_lora_weights="kaiming").to_dict()["init_lora_weights"] == "kaiming"
    stds = {}
    for init in ("gaussian", "kaiming"):
        torch.manual_seed(0)
        model = nn.Sequential(Attention())
        inject_dash(model, DashConfig(rank=2, num_directions=2, init_lora_weights=init))
        layers = [m for m in model.modules() if isinstance(m, DashLinear)]
        assert all(torch.equal(m.lora_B.weight, torch.zeros_like(m.lora_B.weight)) for m in layers)
        stds[init] = torch.cat([m.lora_A.weight.flatten() for m in layers]).std().item()  # 3 layers x 16 draws
    # gaussian: std 1/r = 0.5; kaiming: U(-1/sqrt(8), 1/sqrt(8)), std 1/sqrt(24) = 0.20
    assert stds["gaussian"] > 0.35 and stds["kaiming"] < 0.3, stds


def test_config_rejects_unknown_init_in_one_line():
    with pytest.raises(DashError, match="init_lora_weights must be one of gaussian, kaiming") as error:
        DashConfig(init_lora_weights="uniform")
    assert "\n" not in str(error.value)
