"""The two-phase schedule: phases by optimizer step, the cached switch, and the data-parallel split of the
direction selection (each process selects a share of the layers, then broadcasts it)."""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import nn

from dash_diffusion import DashConfig, dash_layers, inject_dash, select_directions
from dash_diffusion.lora_dash.schedule import DashSchedule, broadcast_directions, direction_owners, selection_summary


def attention_like_model(seed: int = 0) -> nn.Module:
    """Blocks of to_q/to_k/to_v/to_out.0 at three widths (several weight shapes), random LoRA factors."""
    torch.manual_seed(seed)
    blocks = nn.ModuleList()
    for width, context in ((12, 12), (16, 20), (12, 20), (16, 16), (12, 12)):
        block = nn.Module()
        block.to_q = nn.Linear(width, width)
        block.to_k = nn.Linear(context, width)
        block.to_v = nn.Linear(context, width)
        block.to_out = nn.ModuleList([nn.Linear(width, width)])
        blocks.append(block)
    inject_dash(blocks, DashConfig(rank=2, num_directions=3, target_modules=("to_q", "to_k", "to_v", "to_out.0")))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in dash_layers(blocks).values():
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=generator))
    return blocks


def test_owners_cover_every_layer_and_split_each_shape_evenly():
    model = attention_like_model()
    layers = dash_layers(model)
    for world_size in (1, 2, 3, 7):
        owners = direction_owners(model, world_size)
        assert set(owners) == set(layers)
        assert set(owners.values()) <= set(range(world_size))
        shapes = Counter((tuple(layers[n].base_layer.weight.shape), owner) for n, owner in owners.items())
        for shape in {tuple(layer.base_layer.weight.shape) for layer in layers.values()}:
            counts = [shapes[(shape, rank)] for rank in range(world_size)]
            # round robin over the shape-sorted list: within a shape, shares differ by at most one
            assert max(counts) - min(counts) <= 1, (shape, counts)


def test_split_selection_on_simulated_processes_equals_one_process():
    reference = attention_like_model()
    select_directions(reference)
    world_size = 3
    processes = [attention_like_model() for _ in range(world_size)]  # identical LoRA factors, as under DDP
    owners = direction_owners(processes[0], world_size)
    for rank, model in enumerate(processes):
        select_directions(model, names={n for n, owner in owners.items() if owner == rank})
        untouched = [n for n, owner in owners.items() if owner != rank]
        assert all(not dash_layers(model)[n].directions_selected for n in untouched)

    # a broadcast collective, simulated: every process sends its packed buffers in the same order
    sent = {rank: [] for rank in range(world_size)}
    for rank, model in enumerate(processes):
        broadcast_directions(copy.deepcopy(model), owners, lambda tensor, owner, rank=rank: sent[rank].append(tensor) or tensor)
    for rank, model in enumerate(processes):
        position = iter(range(len(owners)))
        broadcast_directions(model, owners, lambda tensor, owner: sent[owner][next(position)])

    for model in processes:
        for (name, got), want in zip(dash_layers(model).items(), dash_layers(reference).values()):
            for buffer in ("dash_U", "dash_V", "dash_indices", "dash_change_rate"):
                assert torch.equal(getattr(got, buffer), getattr(want, buffer)), (name, buffer)
        assert selection_summary(model) == selection_summary(reference)


def test_schedule_switches_once_after_step_t_and_remembers_it():
    model = attention_like_model()
    schedule = DashSchedule(warmup_steps=2, models={"unet": model})
    assert [schedule.phase(step) for step in (1, 2, 3)] == ["lora", "lora", "dash"]
    assert not schedule.after_optimizer_step(1) and not schedule.switched
    assert schedule.after_optimizer_step(2) and schedule.switched and schedule.selected_at_step == 2
    summary = schedule.summaries["unet"]
    assert set(summary) == set(dash_layers(model)) and all(len(item["indices"]) == 3 for item in summary.values())
    assert not schedule.after_optimizer_step(3)  # already switched: nothing is selected again
    assert schedule.selected_at_step == 2


def test_plain_lora_schedule_never_switches():
    model = attention_like_model()
    schedule = DashSchedule(warmup_steps=0, models={"unet": model}, enabled=False)
    assert schedule.phase(5) == "lora" and not schedule.after_optimizer_step(5) and not schedule.switched


def test_zero_weight_layer_does_not_make_the_schedule_select_again():
    # bug: `switched` required every layer to hold a direction; a layer whose weight is 0 has none usable,
    # so the schedule selected again on every dash step (moving U_s, V_s under training) and
    # before_optimizer_step would have kept every dash_delta's gradient at None for good.
    model = attention_like_model()
    zero_layer = dash_layers(model)["0.to_q"]
    with torch.no_grad():
        zero_layer.base_layer.weight.zero_()
    schedule = DashSchedule(warmup_steps=1, models={"unet": model})
    assert schedule.after_optimizer_step(1) and schedule.switched
    assert not zero_layer.directions_selected
    U_before = {name: layer.dash_U.clone() for name, layer in dash_layers(model).items()}
    with torch.no_grad():
        for layer in dash_layers(model).values():
            layer.lora_A.weight.mul_(-3.0).add_(1.0)  # training moved the factors: reselection would differ
    assert not schedule.after_optimizer_step(2)
    assert all(torch.equal(layer.dash_U, U_before[name]) for name, layer in dash_layers(model).items())

    resumed = DashSchedule(warmup_steps=1, models={"unet": model})  # a resumed run reads the buffers
    assert resumed.switched and not resumed.after_optimizer_step(2)
    model[1].to_q(torch.randn(2, 16)).sum().backward()
    resumed.before_optimizer_step()
    assert dash_layers(model)["1.to_q"].dash_delta.grad is not None


def test_before_optimizer_step_drops_delta_gradients_until_the_switch():
    # bug: dash_delta entered AdamW with a zero gradient from step 1 (see tests/test_delta_optimizer_state.py)
    model = attention_like_model()
    schedule = DashSchedule(warmup_steps=1, models={"unet": model})
    layers = dash_layers(model)
    for layer in layers.values():
        layer(torch.randn(2, layer.in_features)).sum().backward()
    schedule.before_optimizer_step()
    assert all(layer.dash_delta.grad is None and layer.dash_delta.requires_grad for layer in layers.values())
    assert all(layer.lora_B.weight.grad is not None for layer in layers.values())
