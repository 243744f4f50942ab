"""Measuring task-specific directions (TSD) of a trained update: where they sit in the spectrum, how few
carry the change, and how well an early selection predicts the final one.

For a frozen weight ``W = U diag(sigma) V^T`` (out x in, reduced SVD, sigma descending, ``k = min(out, in)``
core directions ``u_i v_i^T``) and an update ``dW`` (out x in), this module uses::

    d_i = u_i^T dW v_i        the update's coordinate along core direction i
    c_i = |d_i| / sigma_i     its change rate (Si et al., ICLR 2025, eq. 2)
    e_i = d_i^2               the part of ||dW||_F^2 lying on core direction i

The ``u_i v_i^T`` are orthonormal under the Frobenius inner product, so ``sum_i e_i <= ||dW||_F^2``; the
*diagonal share* ``sum_i e_i / ||dW||_F^2`` says how much of the update lies on core directions at all
(a random update of an out x in matrix puts about ``k / (out in)`` of its energy there). Directions whose
singular value is numerically zero (see :func:`~.directions.usable_directions`) get ``c_i = e_i = 0``: their
``u_i``, ``v_i`` are arbitrary and they are never selected. ``k_u`` counts the usable directions.

Summaries:

- *position* of direction ``i`` (0-based) as a fraction of the usable rank: ``p_i = i / (k_u - 1)``,
  0 = largest singular value, 1 = smallest; "small but not the smallest" is the band
  ``[0.5, 0.95)`` (:data:`SMALL_BAND`, the band ``benchmarks/tsd_study.py`` uses).
- *mass count* ``n_q``: the fewest directions whose values (``c`` or ``e``) hold a share ``q`` of the total.
- *overlap* of a predicted set ``P`` and a final set ``F`` of ``s`` directions: ``|P n F| / s``. Two
  independent uniformly random ``s``-subsets of ``k_u`` directions share ``s^2 / k_u`` elements on
  average, so chance overlap is ``s / k_u``.
- *captured mass*: ``sum_{i in P} c_i / sum_{i in F} c_i`` under the final rates, 1 when ``P`` holds as
  much final change as the best ``s`` directions do.

Everything runs in float32 on the SVD's device.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .directions import SVD, top_directions, usable_directions

#: Positions (fractions of the usable rank) counted as "small but not the smallest" singular values.
SMALL_BAND: tuple[float, float] = (0.5, 0.95)


def core_coordinates(svd: SVD, update: torch.Tensor) -> torch.Tensor:
    """(k,) float32: ``d_i = u_i^T dW v_i`` for every core direction of ``W`` (0 where unusable).

    Args:
        svd: float32 SVD of the frozen weight ``W`` (out x in).
        update: ``dW``, (out, in), any floating dtype.
    """
    dW = update.detach().to(device=svd.U.device, dtype=torch.float32)
    coordinates = ((svd.U.T @ dW) * svd.Vh).sum(dim=1)  # (k, in) * (k, in) -> (k,)
    return torch.where(usable_directions(svd), coordinates, torch.zeros_like(coordinates))


def change_rates(svd: SVD, update: torch.Tensor) -> torch.Tensor:
    """(k,) float32: ``c_i = |u_i^T dW v_i| / sigma_i`` for any update ``dW`` (0 where unusable).

    For a LoRA update ``dW = scaling B A`` this equals :func:`~.directions.lora_change_rates`."""
    usable = usable_directions(svd)
    safe_sigma = torch.where(usable, svd.S, torch.ones_like(svd.S))
    return core_coordinates(svd, update).abs() / safe_sigma


def diagonal_energy(svd: SVD, update: torch.Tensor) -> torch.Tensor:
    """(k,) float32: ``e_i = (u_i^T dW v_i)^2``, the share of ``||dW||_F^2`` on each core direction."""
    return core_coordinates(svd, update).square()


def top_set(rates: torch.Tensor, usable: torch.Tensor, num_directions: int) -> list[int]:
    """The positions of the ``num_directions`` largest rates among usable directions, exactly as the
    trainer selects them (:func:`~.directions.top_directions`, ties towards larger singular values)."""
    return [i for i in top_directions(rates, usable, num_directions).tolist() if i >= 0]


def spectrum_positions(indices: Iterable[int], num_usable: int) -> list[float]:
    """``i / (k_u - 1)`` for each selected position ``i`` (-1 slots are skipped): 0 = largest, 1 = smallest."""
    span = max(num_usable - 1, 1)
    return [i / span for i in indices if i >= 0]


def band_shares(positions: Sequence[float], band: tuple[float, float] = SMALL_BAND) -> tuple[float, float, float]:
    """Shares of ``positions`` below the band (large singular values), inside it, and at or above its
    upper edge (the smallest singular values). NaNs when ``positions`` is empty."""
    if not positions:
        return (float("nan"),) * 3
    low, high = band
    count = len(positions)
    above = sum(p < low for p in positions) / count
    inside = sum(low <= p < high for p in positions) / count
    return above, inside, 1.0 - above - inside


def histogram(positions: Sequence[float], bins: int = 10) -> list[float]:
    """Share of ``positions`` in each of ``bins`` equal bins of [0, 1] (the last bin includes 1)."""
    counts = [0] * bins
    for p in positions:
        counts[min(int(p * bins), bins - 1)] += 1
    total = max(len(positions), 1)
    return [c / total for c in counts]


def mass_count(values: torch.Tensor, share: float) -> int:
    """The fewest entries of ``values`` (non-negative) whose sum reaches ``share`` of the total
    (0 when the total is 0)."""
    ordered = torch.sort(values.detach().double().flatten(), descending=True).values
    total = ordered.sum()
    if total <= 0:
        return 0
    cumulative = torch.cumsum(ordered, dim=0)
    # a tiny tolerance so that share = 1.0 is reached despite rounding in the cumulative sum
    return int((cumulative < share * total * (1 - 1e-12)).sum()) + 1


def overlap(predicted: Sequence[int], final: Sequence[int]) -> float:
    """``|P n F| / |P|`` of two sets of positions (-1 slots ignored); NaN when ``P`` is empty."""
    chosen = {i for i in predicted if i >= 0}
    if not chosen:
        return float("nan")
    return len(chosen & {i for i in final if i >= 0}) / len(chosen)


def chance_overlap(num_directions: int, num_usable: int) -> float:
    """Expected overlap of two independent uniform ``s``-subsets of ``k_u`` directions: ``s / k_u``."""
    return min(num_directions, num_usable) / num_usable if num_usable else float("nan")


def captured_mass(rates: torch.Tensor, predicted: Sequence[int], final: Sequence[int]) -> float:
    """``sum_{P} c_i / sum_{F} c_i`` under ``rates`` (the final change rates): how much of the best
    ``s`` directions' change the predicted ones hold. NaN when the final set holds no change."""
    best = float(rates[[i for i in final if i >= 0]].double().sum())
    if best <= 0:
        return float("nan")
    return float(rates[[i for i in predicted if i >= 0]].double().sum()) / best


def random_update(out_features: int, in_features: int, rank: int | None, generator: torch.Generator) -> torch.Tensor:
    """A reference update with no task in it: ``B A`` with standard Gaussian ``B`` (out x rank) and ``A``
    (rank x in), or a dense standard Gaussian matrix when ``rank`` is None. Only its direction matters to
    the shares and counts above, not its scale."""
    if rank is None:
        return torch.randn(out_features, in_features, generator=generator)
    return torch.randn(out_features, rank, generator=generator) @ torch.randn(rank, in_features, generator=generator)


def quantiles(values: Sequence[float], levels: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> list[float]:
    """Linear-interpolation quantiles of ``values`` at ``levels`` (NaNs when empty)."""
    if not values:
        return [float("nan")] * len(levels)
    data = torch.tensor(list(values), dtype=torch.float64)
    return torch.quantile(data, torch.tensor(list(levels), dtype=torch.float64)).tolist()
