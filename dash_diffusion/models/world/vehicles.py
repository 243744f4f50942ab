"""Vehicles: the car (side view, facing right) and the rocket standing on its fins, in the unit box.

The object's colour is the car's body and the rocket's hull. ``Scene.variant`` picks a saloon, a van
or a low sports car, and the rocket's window count.
"""

from __future__ import annotations

from .palette import GLASS, GREY, GREY_DARK, OUTLINE, WHITE, highlight
from .pen import Pen
from .scene import Scene
from .vocab import COLOURS, RGB

_TYRE: RGB = (40, 40, 46)
_LAMP: RGB = (255, 226, 110)
_TAIL: RGB = (220, 40, 40)
_CABINS = {  # (rear bottom, rear top, front top, front bottom) u positions and the roof's v
    0: ((0.2, 0.3, 0.64, 0.78), 0.33),
    1: ((0.06, 0.08, 0.72, 0.84), 0.22),
    2: ((0.28, 0.38, 0.6, 0.76), 0.42),
}


def draw_car(pen: Pen, scene: Scene) -> None:
    """A car facing right: cabin with windows, body with lights and a door line, two wheels."""
    colour = COLOURS[scene.colour]
    (rb, rt, ft, fb), roof = _CABINS[scene.variant]
    body_top = 0.6 if scene.variant == 2 else 0.55
    pen.polygon([(rb, body_top + 0.02), (rt, roof), (ft, roof), (fb, body_top + 0.02)], colour)
    inset = 0.045
    mid = (rt + ft) / 2
    rear = [(rt + inset * 0.6, roof + inset), (mid - 0.015, roof + inset), (mid - 0.015, body_top), (rb + inset * 1.6, body_top)]
    front = [(mid + 0.015, roof + inset), (ft - inset * 0.4, roof + inset), (fb - inset * 1.3, body_top), (mid + 0.015, body_top)]
    pen.polygon(rear, GLASS)
    pen.polygon(front, GLASS)
    pen.rect(0.03, body_top, 0.97, 0.86, colour, radius=0.08)
    pen.line([(0.3, body_top + 0.04), (0.7, body_top + 0.04)], highlight(colour), 0.025)
    pen.line([(mid, body_top + 0.02), (mid, 0.8)], OUTLINE, 0.012)
    pen.rect(0.9, body_top + 0.06, 0.97, body_top + 0.13, _LAMP, radius=0.02)
    pen.rect(0.03, body_top + 0.06, 0.08, body_top + 0.13, _TAIL, radius=0.02)
    for u in (0.25, 0.76):
        pen.circle(u, 0.855, 0.125, _TYRE)
        pen.circle(u, 0.855, 0.06, GREY)


def draw_rocket(pen: Pen, scene: Scene) -> None:
    """A rocket: hull in the scene's colour, nose cone and fins in a contrasting colour, windows."""
    colour = COLOURS[scene.colour]
    accent = WHITE if scene.colour in ("red", "pink", "orange") else COLOURS["red"]
    shift = 0.06 * scene.turn
    for side in (-1, 1):
        fin = [(0.5 + side * 0.14, 0.6), (0.5 + side * 0.3, 0.9), (0.5 + side * 0.3, 1.0), (0.5 + side * 0.14, 0.88)]
        pen.polygon(fin, accent)
    pen.rect(0.42, 0.86, 0.58, 0.97, GREY_DARK)
    pen.rect(0.34, 0.28, 0.66, 0.9, colour, radius=0.1, corners=(False, False, True, True))
    pen.polygon([(0.34, 0.3), (0.38, 0.18), (0.44, 0.08), (0.5, 0.02), (0.56, 0.08), (0.62, 0.18), (0.66, 0.3)], accent)
    pen.line([(0.4, 0.38), (0.4, 0.78)], highlight(colour), 0.03)
    windows = (0.45,) if scene.variant == 0 else ((0.42, 0.62) if scene.variant == 1 else (0.4, 0.55, 0.7))
    radius = 0.08 if scene.variant == 0 else 0.06 - 0.01 * (scene.variant - 1)
    for v in windows:
        pen.circle(0.5 + shift, v, radius + 0.02, GREY)
        pen.circle(0.5 + shift, v, radius, GLASS)
