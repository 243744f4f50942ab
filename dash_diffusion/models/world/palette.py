"""Fixed drawing colours and small helpers that derive shades of a colour."""

from __future__ import annotations

from .vocab import RGB

OUTLINE: RGB = (28, 40, 48)
GREY: RGB = (152, 160, 168)
GREY_DARK: RGB = (88, 96, 104)
WHITE: RGB = (250, 250, 248)
PUPIL: RGB = (25, 30, 40)
GLASS: RGB = (170, 215, 240)
WOOD: RGB = (130, 82, 46)
LEAF: RGB = (40, 130, 48)
SKIN_ORANGE: RGB = (245, 140, 40)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """The colour ``t`` of the way from ``a`` to ``b``."""
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def lighten(colour: RGB, t: float) -> RGB:
    """Towards white by ``t``."""
    return mix(colour, (255, 255, 255), t)


def shade(colour: RGB, t: float) -> RGB:
    """Towards black by ``t``."""
    return mix(colour, (0, 0, 0), t)


def luminance(colour: RGB) -> float:
    """Perceived lightness in [0, 255]."""
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def highlight(colour: RGB) -> RGB:
    """A shine that shows on light and dark colours alike."""
    return lighten(colour, 0.5) if luminance(colour) < 200 else (255, 255, 255)


def darker(colour: RGB) -> RGB:
    """A side or shadow face of ``colour`` that stays visible on very dark colours."""
    return shade(colour, 0.35) if luminance(colour) > 60 else lighten(colour, 0.2)


def contrast(colour: RGB, light: RGB = WHITE, dark: RGB = OUTLINE) -> RGB:
    """``light`` on dark colours, ``dark`` on light ones: for details drawn on top of ``colour``."""
    return light if luminance(colour) < 150 else dark
