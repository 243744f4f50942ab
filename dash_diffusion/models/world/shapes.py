"""Outlines of the robot's chest emblems as polygons around a centre, in unit coordinates."""

from __future__ import annotations

import math
from functools import lru_cache

Point = tuple[float, float]


@lru_cache(maxsize=None)
def _unit_outline(kind: str) -> tuple[Point, ...]:
    """The emblem ``kind`` inside the square [-1, 1]^2 (y points down)."""
    if kind == "star":
        return tuple(
            ((1.0 if i % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + i * math.pi / 5),
             (1.0 if i % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + i * math.pi / 5) + 0.08)
            for i in range(10)
        )
    if kind == "heart":
        points = []
        for i in range(28):
            t = 2 * math.pi * i / 28
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((x / 16.5, -y / 15.0 - 0.1))
        return tuple(points)
    if kind == "bolt":
        return ((0.15, -1.0), (-0.6, 0.12), (-0.05, 0.12), (-0.25, 1.0), (0.62, -0.2), (0.08, -0.2), (0.35, -1.0))
    if kind == "square":
        return ((-0.78, -0.78), (0.78, -0.78), (0.78, 0.78), (-0.78, 0.78))
    if kind == "circle":
        return tuple((0.85 * math.cos(2 * math.pi * i / 24), 0.85 * math.sin(2 * math.pi * i / 24)) for i in range(24))
    raise ValueError(f"unknown emblem {kind!r}")


def emblem_outline(kind: str, centre: Point, radius: float, squash: float = 1.0) -> list[Point]:
    """The emblem ``kind`` centred on ``centre``, ``radius`` high, squashed horizontally by ``squash``."""
    cx, cy = centre
    return [(cx + x * radius * squash, cy + y * radius) for x, y in _unit_outline(kind)]
