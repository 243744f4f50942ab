"""Direction selection equals a brute-force reference; rank-deficient weights; batched SVD."""

from __future__ import annotations

import torch
from torch import nn

from dash_diffusion import DashConfig, dash_layers, inject_dash, select_directions
from dash_diffusion.lora_dash.directions import batched_svd, lora_change_rates, select_from_svd


def brute_force_rates(W: torch.Tensor, delta_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Explicit full SVD in float64 and a Python loop over i: c_i = |u_i^T dW v_i| / sigma_i."""
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=True)
    rates = torch.zeros(S.numel(), dtype=torch.float64)
    for i in range(S.numel()):
        rates[i] = (U[:, i] @ delta_w.double() @ Vh[i, :]).abs() / S[i]
    return rates, U, S, Vh


def test_change_rates_and_selection_equal_brute_force():
    torch.manual_seed(0)
    for out_features, in_features in [(20, 12), (12, 20), (16, 16)]:
        W = torch.randn(out_features, in_features)
        A, B, scaling = torch.randn(3, in_features), torch.randn(out_features, 3), 0.7
        svd = batched_svd({"w": W})["w"]
        rates = lora_change_rates(svd, A, B, scaling)
        reference, U, S, Vh = brute_force_rates(W, scaling * B @ A)
        torch.testing.assert_close(rates.double(), reference, rtol=1e-4, atol=1e-6)

        selection = select_from_svd(svd, A, B, scaling, num_directions=5)
        expected = torch.argsort(reference, descending=True)[:5]
        assert selection.indices.tolist() == expected.tolist()
        for slot, i in enumerate(expected.tolist()):
            # compare the sign-free rank-one directions u_i v_i^T
            got = torch.outer(selection.U_s[:, slot], selection.V_s[:, slot]).double()
            torch.testing.assert_close(got, torch.outer(U[:, i], Vh[i, :]), atol=1e-4, rtol=1e-4)


def test_rank_deficient_weight_never_selects_zero_singular_values():
    torch.manual_seed(1)
    W = torch.randn(16, 3) @ torch.randn(3, 16)  # rank 3
    svd = batched_svd({"w": W})["w"]
    # an update living in W's null space would give huge rates to sigma ~ 0 directions without the guard
    A, B = torch.randn(2, 16), torch.randn(16, 2)
    selection = select_from_svd(svd, A, B, 1.0, num_directions=6)
    used = selection.indices[selection.indices >= 0]
    assert used.numel() == 3 and set(used.tolist()) <= {0, 1, 2}
    assert selection.indices[3:].tolist() == [-1, -1, -1]
    assert torch.isfinite(selection.change_rates).all()
    assert torch.equal(selection.U_s[:, 3:], torch.zeros(16, 3))


def test_batched_svd_matches_per_matrix_across_shapes_and_chunks():
    torch.manual_seed(2)
    weights = {f"a{i}": torch.randn(8, 6) for i in range(5)} | {f"b{i}": torch.randn(6, 10, dtype=torch.float64) for i in range(3)}
    svds = batched_svd(weights, max_batch_elements=100)  # forces several chunks per shape
    assert set(svds) == set(weights)
    for name, W in weights.items():
        svd = svds[name]
        assert svd.U.dtype == torch.float32
        torch.testing.assert_close(svd.U @ torch.diag(svd.S) @ svd.Vh, W.float(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(svd.S, torch.linalg.svdvals(W.float()), atol=1e-5, rtol=1e-5)


def test_model_selection_with_precomputed_svd_equals_on_the_fly():
    def build():
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 20))
        inject_dash(model, DashConfig(rank=2, num_directions=4, target_modules=("0", "2")))
        g = torch.Generator().manual_seed(4)
        with torch.no_grad():
            for layer in dash_layers(model).values():
                layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g))
        return model

    fly, pre = build(), build()
    summary = select_directions(fly)
    svds = batched_svd({n: m.base_layer.weight for n, m in dash_layers(pre).items()})
    assert select_directions(pre, svds=svds) == summary
    for (name, a), b in zip(dash_layers(fly).items(), dash_layers(pre).values()):
        assert torch.equal(a.dash_U, b.dash_U) and torch.equal(a.dash_indices, b.dash_indices)
        assert len(summary[name]["indices"]) == 4
        rates = summary[name]["change_rates"]
        assert rates == sorted(rates, reverse=True)
