"""Task-specific directions: SVD of frozen weights, change rates and top-s selection.

For a frozen weight ``W = U diag(sigma) V^T`` (out x in, reduced SVD, sigma descending) and an
update ``dW``, the change rate of core direction ``i`` is (Si et al., ICLR 2025, eq. 2)::

    c_i = | u_i^T dW v_i | / sigma_i

With a LoRA update ``dW = s B A`` (``s = alpha / r``) the numerator is a diagonal entry of
``(U^T B)(A V)``, so every rate comes from two thin products of cost ``k r (out + in)``
(``k = min(out, in)``) and the full ``U^T dW V`` (k x k) is never formed.

Directions whose singular value is numerically zero (rank-deficient ``W``) are never selected:
``u_i``/``v_i`` are arbitrary there and ``c_i`` would divide by zero. Everything here runs in
float32 whatever the training dtype; callers cast the selected directions afterwards.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch


@dataclass
class SVD:
    """Reduced SVD of one weight in float32: ``W = U @ diag(S) @ Vh``."""

    U: torch.Tensor  # (out, k)
    S: torch.Tensor  # (k,)
    Vh: torch.Tensor  # (k, in)


@dataclass
class Selection:
    """Directions chosen for one layer.

    Slots beyond the number of usable directions (when ``W`` has fewer than ``s`` non-zero singular
    values) carry index -1 and zero vectors, so every layer keeps the same shape ``s``.
    """

    U_s: torch.Tensor  # (out, s)
    V_s: torch.Tensor  # (in, s)
    indices: torch.Tensor  # (s,) int64 positions in the descending singular values, -1 = unused
    change_rates: torch.Tensor  # (k,) float32 rates of every core direction


def usable_directions(svd: SVD) -> torch.Tensor:
    """(k,) bool: singular values above the numerical-zero threshold of numpy's ``matrix_rank``,
    ``max(out, in) * eps(float32) * sigma_max``. Only these directions may be selected."""
    eps = torch.finfo(torch.float32).eps
    tolerance = svd.S.max() * max(svd.U.shape[0], svd.Vh.shape[1]) * eps
    return svd.S > tolerance


def lora_change_rates(svd: SVD, lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float) -> torch.Tensor:
    """Change rates ``c_i`` of every core direction under ``dW = scaling * B A``, in float32.

    Args:
        svd: float32 SVD of the frozen weight.
        lora_A: (r, in); lora_B: (out, r).
    Returns:
        (k,) float32; 0 for directions whose singular value is numerically zero.
    """
    A = lora_A.detach().to(device=svd.U.device, dtype=torch.float32)
    B = lora_B.detach().to(device=svd.U.device, dtype=torch.float32)
    left = svd.U.T @ B  # (k, r): u_i^T B
    right = A @ svd.Vh.T  # (r, k): A v_i
    numerators = (left * right.T).sum(dim=1).abs() * abs(scaling)  # (k,)
    usable = usable_directions(svd)
    safe_sigma = torch.where(usable, svd.S, torch.ones_like(svd.S))
    return torch.where(usable, numerators / safe_sigma, torch.zeros_like(numerators))


def top_directions(change_rates: torch.Tensor, usable: torch.Tensor, num_directions: int) -> torch.Tensor:
    """Positions of the ``num_directions`` largest change rates among ``usable`` directions.

    Ties are broken towards the larger singular value (stable sort), so the result is deterministic.
    Returns (s,) int64, padded with -1 when fewer than ``s`` directions are usable.
    """
    keys = torch.where(usable, change_rates, torch.full_like(change_rates, -1.0))
    order = torch.sort(keys, descending=True, stable=True).indices
    chosen = order[: min(num_directions, int(usable.sum()))]
    padding = torch.full((num_directions - chosen.numel(),), -1, dtype=torch.int64, device=chosen.device)
    return torch.cat([chosen.to(torch.int64), padding])


def select_from_svd(svd: SVD, lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float, num_directions: int) -> Selection:
    """Rates, top-s positions and the matching singular vectors (float32) for one layer."""
    rates = lora_change_rates(svd, lora_A, lora_B, scaling)
    indices = top_directions(rates, usable_directions(svd), num_directions)
    used = indices >= 0
    safe = indices.clamp(min=0)
    U_s = svd.U[:, safe] * used  # (out, s), zero columns for unused slots
    V_s = svd.Vh[safe, :].T * used  # (in, s)
    return Selection(U_s=U_s.contiguous(), V_s=V_s.contiguous(), indices=indices, change_rates=rates)


def batched_svd(
    weights: Mapping[str, torch.Tensor],
    device: torch.device | str | None = None,
    max_batch_elements: int = 64 * 1024 * 1024,
) -> dict[str, SVD]:
    """Reduced float32 SVDs of many weights, batched by shape.

    Matrices of one shape are stacked and decomposed by one ``torch.linalg.svd`` call per chunk of at
    most ``max_batch_elements`` input elements, on ``device`` (default: where each weight lives).
    The frozen weights do not change during training, so the result can be computed ahead of the phase
    boundary and reused.
    """
    return dict(iter_batched_svd(weights, device=device, max_batch_elements=max_batch_elements))


def iter_batched_svd(
    weights: Mapping[str, torch.Tensor],
    device: torch.device | str | None = None,
    max_batch_elements: int = 64 * 1024 * 1024,
) -> Iterable[tuple[str, SVD]]:
    """Like :func:`batched_svd` but yields ``(name, SVD)`` chunk by chunk, so that a caller that consumes
    each result at once holds only one chunk of decompositions in memory."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for name, weight in weights.items():
        groups[(tuple(weight.shape), str(device or weight.device))].append(name)
    for (shape, dev), names in groups.items():
        per_chunk = max(1, max_batch_elements // (shape[0] * shape[1]))
        for start in range(0, len(names), per_chunk):
            chunk = names[start : start + per_chunk]
            stack = torch.stack([weights[n].detach().to(device=dev, dtype=torch.float32) for n in chunk])
            U, S, Vh = torch.linalg.svd(stack, full_matrices=False)
            for i, name in enumerate(chunk):
                yield name, SVD(U=U[i], S=S[i], Vh=Vh[i])
