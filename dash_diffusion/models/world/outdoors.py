"""Things that grow or are built: the tree, the house and the potted flower, in the unit box.

The object's colour is the tree's foliage, the house's walls and the flower's petals.
``Scene.variant`` picks a round, pine or poplar tree; a cottage, a house with a round attic
window or a two-storey house; a flower with round petals, a daisy or a tulip.
"""

from __future__ import annotations

import math

from .palette import GLASS, LEAF, WHITE, WOOD, darker, highlight, shade
from .pen import Pen
from .scene import Scene
from .vocab import COLOURS, RGB

_ROOF: RGB = (150, 62, 46)
_ROOF_ON_RED: RGB = (84, 84, 96)
_POT: RGB = (192, 98, 58)
_CENTRE: RGB = (250, 205, 40)
_CENTRE_ON_YELLOW: RGB = (120, 70, 30)


def draw_tree(pen: Pen, scene: Scene) -> None:
    """A tree with a brown trunk and foliage in the scene's colour."""
    colour = COLOURS[scene.colour]
    spot = highlight(colour)
    if scene.variant == 1:  # pine
        pen.rect(0.44, 0.78, 0.56, 1.0, WOOD)
        for top, bottom, half in ((0.02, 0.4, 0.2), (0.2, 0.6, 0.28), (0.4, 0.82, 0.36)):
            pen.polygon([(0.5, top), (0.5 + half, bottom), (0.5 - half, bottom)], colour)
        return
    if scene.variant == 2:  # poplar: a tall oval crown
        pen.rect(0.45, 0.6, 0.55, 1.0, WOOD)
        pen.blob([(0.3, 0.02, 0.7, 0.8), (0.24, 0.3, 0.76, 0.76)], colour)
        for u, v in ((0.42, 0.2), (0.58, 0.36), (0.4, 0.52), (0.6, 0.62)):
            pen.circle(u, v, 0.028, spot, outline=None)
        return
    pen.rect(0.43, 0.55, 0.57, 1.0, WOOD)
    pen.polygon([(0.43, 0.95), (0.36, 1.0), (0.64, 1.0), (0.57, 0.95)], WOOD, outline=None)
    crown = [pen.disc(0.5, 0.3, 0.25), pen.disc(0.3, 0.46, 0.19), pen.disc(0.7, 0.46, 0.19), pen.disc(0.5, 0.52, 0.17)]
    pen.blob(crown, colour)
    for u, v in ((0.4, 0.25), (0.6, 0.4), (0.33, 0.48), (0.66, 0.22)):
        pen.circle(u, v, 0.03, spot, outline=None)


def draw_house(pen: Pen, scene: Scene) -> None:
    """A house with walls in the scene's colour, a roof, a door and windows; a side wall shows
    on the far side when it is turned."""
    colour = COLOURS[scene.colour]
    roof = _ROOF_ON_RED if scene.colour in ("red", "pink", "orange") else _ROOF
    wall_top = 0.36 if scene.variant == 2 else 0.5
    apex = 0.04 if scene.variant == 2 else 0.14
    shift = 0.04 * scene.turn
    if abs(scene.turn) > 0.1:
        side = 1 if scene.turn < 0 else -1  # the far side is opposite the way the house turns
        edge = 0.86 if side > 0 else 0.14
        depth = side * 0.12 * abs(scene.turn)
        pen.polygon([(edge, wall_top), (edge + depth, wall_top - 0.04), (edge + depth, 0.96), (edge, 1.0)], darker(colour))
    pen.rect(0.62, apex + 0.06, 0.72, wall_top - 0.08, shade(roof, 0.15))
    pen.rect(0.14, wall_top, 0.86, 1.0, colour)
    pen.polygon([(0.06, wall_top + 0.02), (0.5, apex), (0.94, wall_top + 0.02)], roof)
    if scene.variant == 1:
        pen.circle(0.5, wall_top - 0.13, 0.06, GLASS)
    pen.rect(0.43 + shift, 0.74, 0.57 + shift, 1.0, WOOD, radius=0.03, corners=(True, True, False, False))
    pen.circle(0.54 + shift, 0.88, 0.012, (230, 200, 90), outline=None)
    rows = (0.56, 0.4) if scene.variant == 2 else (wall_top + 0.07,)
    for top in rows:
        for left in (0.2, 0.66):
            pen.rect(left + shift, top, left + 0.14 + shift, top + 0.13, GLASS)
            pen.line([(left + 0.07 + shift, top), (left + 0.07 + shift, top + 0.13)], WHITE, 0.016)
            pen.line([(left + shift, top + 0.065), (left + 0.14 + shift, top + 0.065)], WHITE, 0.016)


def _petals(pen: Pen, colour: RGB, count: int, ring: float, radius: float, shift: float) -> None:
    for i in range(count):
        angle = 2 * math.pi * i / count
        pen.circle(0.5 + shift + ring * math.cos(angle), 0.3 + ring * math.sin(angle), radius, colour)


def draw_flower(pen: Pen, scene: Scene) -> None:
    """A flower in a pot: green stem and leaves, petals in the scene's colour."""
    colour = COLOURS[scene.colour]
    centre = _CENTRE_ON_YELLOW if scene.colour in ("yellow", "orange") else _CENTRE
    shift = 0.04 * scene.turn
    stem = shade(LEAF, 0.25) if scene.colour == "green" else LEAF
    pen.limb((0.5, 0.78), (0.5 + shift, 0.34), 0.03, stem)
    pen.polygon([(0.5, 0.66), (0.3, 0.52), (0.22, 0.58), (0.36, 0.66)], stem)
    pen.polygon([(0.5, 0.58), (0.7, 0.46), (0.78, 0.5), (0.64, 0.6)], stem)
    if scene.variant == 2:  # tulip
        u = 0.5 + shift
        pen.polygon([(u - 0.19, 0.1), (u - 0.09, 0.2), (u, 0.06), (u + 0.09, 0.2), (u + 0.19, 0.1),
                     (u + 0.18, 0.34), (u, 0.46), (u - 0.18, 0.34)], colour)
    elif scene.variant == 1:  # daisy
        _petals(pen, colour, 10, 0.18, 0.085, shift)
        pen.circle(0.5 + shift, 0.3, 0.1, centre)
    else:
        _petals(pen, colour, 6, 0.15, 0.12, shift)
        pen.circle(0.5 + shift, 0.3, 0.095, centre)
    pen.polygon([(0.3, 0.8), (0.7, 0.8), (0.64, 1.0), (0.36, 1.0)], _POT)
    pen.rect(0.27, 0.74, 0.73, 0.82, shade(_POT, 0.1), radius=0.02)
    pen.line([(0.33, 0.86), (0.38, 0.96)], highlight(_POT), 0.02)
