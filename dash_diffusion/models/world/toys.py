"""Small toys: the ball, the cup and the rubber duck, each in the unit box standing on ``v = 1``.

The cup and the duck are drawn facing the viewer's right; the renderer mirrors them for a turn to
the left. ``Scene.variant`` picks the ball's pattern, the cup's style and the duck's head pose.
"""

from __future__ import annotations

from .palette import GREY, OUTLINE, PUPIL, WHITE, darker, highlight, luminance, mix
from .pen import Pen
from .scene import Scene
from .vocab import COLOURS, RGB

_COFFEE: RGB = (92, 54, 30)
_BEAK: RGB = (245, 140, 40)
_BEAK_ON_ORANGE: RGB = (200, 52, 40)


def _pattern_colour(colour: RGB) -> RGB:
    """White details, or a cool grey-blue on a white object."""
    return WHITE if luminance(colour) < 215 else (105, 128, 168)


def draw_ball(pen: Pen, scene: Scene) -> None:
    """A ball with a stripe, beach-ball segments or spots, its pattern sliding with the turn."""
    colour = COLOURS[scene.colour]
    detail = _pattern_colour(colour)
    shift = 0.12 * scene.turn
    pen.circle(0.5, 0.6, 0.4, colour)
    if scene.variant == 0:
        pen.arc(0.14 + shift * 0.3, 0.3, 0.86 + shift * 0.3, 0.7, 18, 162, detail, 0.075)
    elif scene.variant == 1:
        half = 0.13 * (1.0 - 0.4 * abs(scene.turn))
        pen.ellipse(0.5 + shift - half, 0.215, 0.5 + shift + half, 0.985, detail)
    else:
        for du, dv, r in ((0.0, 0.0, 0.09), (-0.22, 0.1, 0.06), (0.2, 0.14, 0.06), (0.05, -0.23, 0.055)):
            pen.circle(0.5 + du + shift, 0.6 + dv, r, detail, outline=None)
    pen.ellipse(0.25, 0.3, 0.4, 0.4, highlight(colour), outline=None)


def draw_cup(pen: Pen, scene: Scene) -> None:
    """A mug with a handle on the right (plain, striped, or on a saucer)."""
    colour = COLOURS[scene.colour]
    bottom = 0.9 if scene.variant == 2 else 0.99
    if scene.variant == 2:
        pen.ellipse(0.08, 0.86, 0.92, 0.99, mix(WHITE, GREY, 0.3))
    for fill, width in ((OUTLINE, 0.09 + 0.044), (colour, 0.09)):
        pen.arc(0.56, 0.42, 0.9, 0.78, 270, 90, fill, width)
    pen.rect(0.16, 0.3, 0.72, bottom, colour, radius=0.07, corners=(False, False, True, True))
    pen.ellipse(0.16, 0.24, 0.72, 0.36, colour)
    pen.ellipse(0.2, 0.265, 0.68, 0.335, _COFFEE, outline=None)
    if scene.variant == 1:
        pen.rect(0.163, 0.56, 0.717, 0.66, _pattern_colour(colour), outline=None)
    pen.rect(0.22, 0.42, 0.29, 0.8, highlight(colour), outline=None, radius=0.03)


def draw_duck(pen: Pen, scene: Scene) -> None:
    """A rubber duck: plump body with a raised tail, head with eye and beak, a folded wing."""
    colour = COLOURS[scene.colour]
    beak = _BEAK_ON_ORANGE if scene.colour == "orange" else _BEAK
    head_u = 0.63 + 0.03 * scene.variant
    head_v = 0.34 - 0.02 * scene.variant
    pen.polygon([(head_u + 0.12, head_v + 0.0), (head_u + 0.32, head_v + 0.05), (head_u + 0.13, head_v + 0.12)], beak)
    pen.polygon([(0.2, 0.62), (0.03, 0.5), (0.1, 0.78)], colour)
    pen.blob([(0.08, 0.56, 0.9, 0.99), pen.disc(head_u, head_v, 0.18)], colour)
    wing = [(0.62, 0.7), (0.5, 0.64), (0.34, 0.65), (0.22, 0.7), (0.34, 0.8), (0.52, 0.82)]
    pen.polygon(wing, mix(colour, darker(colour), 0.5), outline=None)
    pen.circle(head_u + 0.06, head_v - 0.04, 0.036, PUPIL, outline=None)
    pen.circle(head_u + 0.05, head_v - 0.052, 0.012, WHITE, outline=None)
    pen.ellipse(head_u - 0.12, head_v - 0.12, head_u - 0.04, head_v - 0.06, highlight(colour), outline=None)
