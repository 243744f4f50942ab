"""``dash_delta``'s optimizer state starts at the switch, as in the paper's code.

Bug pinned here: ``dash_delta`` was in the optimizer from step 1 with an exactly-zero gradient, so AdamW
counted the ``t`` pre-launch steps and its bias correction started the dash phase at step ``t + 1``
(with t = 100, delta moved 1.7-1.9x as far in its first dash steps as with fresh state).
``DashSchedule.before_optimizer_step`` sets ``dash_delta.grad = None`` before the switch, which every
supported optimizer skips.

Each run trains a tiny MLP of three ``DashLinear`` layers on a fixed synthetic loss: ``t = 3`` warm-up
steps, then dash steps. Run (a) holds every trainable parameter from step 1 and calls the hook; the
reference (b) holds only ``lora_A``/``lora_B`` and adds the deltas with ``add_param_group`` right after
the switch, the way a parameter that had no gradient before would enter the optimizer.
"""

from __future__ import annotations

from typing import Callable, Iterable

import pytest
import torch
from prodigyopt import Prodigy
from torch import nn

from dash_diffusion import DashConfig, dash_layers, inject_dash, trainable_parameters
from dash_diffusion.lora_dash.schedule import DashSchedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WARMUP = 3
TOTAL_STEPS = 8
OptimizerFactory = Callable[[Iterable], torch.optim.Optimizer]


def adamw(params: Iterable) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-2)


def prodigy(params: Iterable) -> torch.optim.Optimizer:
    return Prodigy(params, lr=1.0, weight_decay=1e-2)


def tiny_model(seed: int = 0) -> nn.Module:
    """Three adapted Linear layers with non-linearities between them."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 6))
    inject_dash(model, DashConfig(rank=2, num_directions=3, target_modules=("0", "2", "4")))
    return model


def synthetic_loss(model: nn.Module) -> torch.Tensor:
    """A fixed regression loss: the same batch and target at every step."""
    generator = torch.Generator().manual_seed(123)
    x, target = torch.randn(16, 8, generator=generator), torch.randn(16, 6, generator=generator)
    return (model(x) - target).pow(2).mean()


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for layer in dash_layers(model).values() for p in (layer.lora_A.weight, layer.lora_B.weight)]


def deltas(model: nn.Module) -> list[nn.Parameter]:
    return [layer.dash_delta for layer in dash_layers(model).values()]


def snapshot(state: dict) -> dict:
    """A copy of one parameter's optimizer state (AdamW updates its tensors, ``step`` included, in place)."""
    return {key: value.clone() if torch.is_tensor(value) else value for key, value in state.items()}


def train(
    make_optimizer: OptimizerFactory, reference: bool, call_hook: bool = True, warmup: int = WARMUP, steps: int = TOTAL_STEPS
) -> tuple[nn.Module, torch.optim.Optimizer, list[dict] | None]:
    """Train the tiny model; returns ``(model, optimizer, delta_states_at_switch)``.

    ``reference``: the optimizer starts with the LoRA factors only and gets the deltas as a new param
    group right after the switch. Otherwise it holds every trainable parameter from step 1 and the
    schedule's ``before_optimizer_step`` runs when ``call_hook``.
    """
    model = tiny_model()
    schedule = DashSchedule(warmup_steps=warmup, models={"unet": model})
    optimizer = make_optimizer(lora_parameters(model) if reference else trainable_parameters(model))
    states_at_switch = None
    for step in range(1, steps + 1):
        model.zero_grad(set_to_none=True)
        synthetic_loss(model).backward()
        if call_hook and not reference:
            schedule.before_optimizer_step()
        torch.nn.utils.clip_grad_norm_(trainable_parameters(model), max_norm=1.0)
        optimizer.step()
        if schedule.after_optimizer_step(step):
            states_at_switch = [snapshot(optimizer.state.get(delta, {})) for delta in deltas(model)]
            if reference:
                optimizer.add_param_group({"params": deltas(model)})
    return model, optimizer, states_at_switch


def assert_same_parameters(got: nn.Module, want: nn.Module, atol: float) -> None:
    for (name, a), b in zip(got.named_parameters(), want.parameters()):
        torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("make_optimizer", [adamw, prodigy], ids=["adamw", "prodigy"])
def test_delta_trains_as_if_added_to_the_optimizer_at_the_switch(make_optimizer):
    # bug: dash_delta's optimizer state started at step 1 (zero gradients counted), not at the switch.
    # Prodigy keeps d, d_max, d_numerator and k per group but reads them from group 0 alone and writes
    # the new d to every group, so an added group changes nothing but the order of two float64 sums
    # (hence 1e-7, though it is exact here); AdamW's update is per parameter: bit-exact.
    model, optimizer, _ = train(make_optimizer, reference=False)
    reference, _, _ = train(make_optimizer, reference=True)
    assert all(delta.abs().min() > 0 for delta in deltas(model))  # delta did learn in the dash phase
    assert_same_parameters(model, reference, atol=0.0 if make_optimizer is adamw else 1e-7)
    for delta in deltas(model):
        assert optimizer.state[delta]["step"] == TOTAL_STEPS - WARMUP


@pytest.mark.parametrize("make_optimizer", [adamw, prodigy], ids=["adamw", "prodigy"])
def test_without_the_hook_delta_state_counts_the_warmup_steps(make_optimizer):
    # bug: without before_optimizer_step, delta's step count is already t at the switch; with it, delta
    # has no optimizer state at the switch.
    buggy, _, buggy_states = train(make_optimizer, reference=False, call_hook=False)
    assert all(float(state["step"]) == WARMUP for state in buggy_states)
    _, _, fixed_states = train(make_optimizer, reference=False)
    assert fixed_states == [{}, {}, {}]

    reference, _, _ = train(make_optimizer, reference=True)
    gaps = [(a - b).abs().max().item() for a, b in zip(deltas(buggy), deltas(reference))]
    if make_optimizer is adamw:  # the counted steps change AdamW's bias correction, hence delta's path
        assert min(gaps) > 1e-3, gaps
    else:  # Prodigy's update never reads a parameter's own step (no per-parameter bias correction, zero
        # moments stay zero, p0 = delta = 0 either way): there the bug shows only in the counter
        assert max(gaps) == 0.0, gaps


def test_adamw_delta_moves_further_in_its_first_dash_steps_without_the_hook():
    # bug: with the t zero-gradient steps counted, AdamW's bias corrections 1 - beta^k run at k = t + j
    # instead of j. At t = 100 the first dash step is about as long (0.98x), but v's correction is then
    # ~10x too small and delta speeds up: after 10 dash steps it has moved 1.4-1.7x as far here (the
    # report measured 1.7-1.9x).
    warmup, dash_steps = 100, 10
    buggy, _, _ = train(adamw, reference=False, call_hook=False, warmup=warmup, steps=warmup + dash_steps)
    fixed, _, _ = train(adamw, reference=False, warmup=warmup, steps=warmup + dash_steps)
    ratios = [(a.norm() / b.norm()).item() for a, b in zip(deltas(buggy), deltas(fixed))]
    assert all(ratio > 1.3 for ratio in ratios), ratios


def test_hook_keeps_requires_grad_and_leaves_dash_gradients_alone():
    # DDP registers only parameters that require grad at construction: the hook must never turn it off.
    model = tiny_model()
    schedule = DashSchedule(warmup_steps=1, models={"unet": model})
    synthetic_loss(model).backward()
    schedule.before_optimizer_step()
    assert all(delta.grad is None and delta.requires_grad for delta in deltas(model))
    assert all(p.grad is not None for p in lora_parameters(model))
    schedule.after_optimizer_step(1)
    synthetic_loss(model).backward()
    schedule.before_optimizer_step()
    assert all(delta.grad is not None and delta.grad.abs().min() > 0 for delta in deltas(model))
