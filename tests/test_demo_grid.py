"""The demo's comparison grid: layout and refusals."""

from __future__ import annotations

import pytest
from PIL import Image

from dash_diffusion.demo_grid import GAP, TILE, ComparisonRow, compose_grid


def _solid(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_grid_places_base_left_and_adapter_right_seed_by_seed() -> None:
    rows = [ComparisonRow(f"base {i}", f"adapter {i}", [_solid((255, 0, 0))] * 2, [_solid((0, 0, 255))] * 2) for i in range(3)]
    grid = compose_grid([_solid((0, 255, 0), (300, 200))] * 6, rows)
    assert grid.width == 4 * TILE + 6 * GAP
    centre_y = grid.height - GAP - TILE // 2
    assert grid.getpixel((GAP + TILE // 2, centre_y)) == (255, 0, 0)
    assert grid.getpixel((grid.width - GAP - TILE // 2, centre_y)) == (0, 0, 255)
    assert (0, 255, 0) in {grid.getpixel((GAP + TILE // 2 + k * (TILE + GAP), 16 + TILE // 2)) for k in range(4)}


def test_grid_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError, match="same number"):
        compose_grid([_solid((0, 0, 0))], [ComparisonRow("a", "b", [_solid((0, 0, 0))] * 2, [_solid((0, 0, 0))])])
    with pytest.raises(ValueError, match="training photos"):
        compose_grid([], [])
