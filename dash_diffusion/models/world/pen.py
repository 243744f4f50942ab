"""A pen that draws in the unit square of one object's bounding box.

Object drawers describe their shapes in coordinates ``(u, v)`` in [0, 1] (``v`` grows downwards, the
object stands on ``v = 1``); the pen maps them onto the pixels of the layer and scales the outline
width with the object, so every class draws the same way at any size.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import ImageDraw

from .palette import OUTLINE
from .vocab import RGB

Point = tuple[float, float]
STROKE = 0.022
"""Outline width as a fraction of the object's box."""


class Pen:
    """Draws onto ``draw`` inside the box whose top-left pixel is ``(left, top)`` and side is ``side``.

    ``squash`` narrows everything horizontally around the box's centre line (a turned viewpoint).
    """

    def __init__(self, draw: ImageDraw.ImageDraw, left: float, top: float, side: float, squash: float = 1.0) -> None:
        self.draw = draw
        self.left = left
        self.top = top
        self.side = side
        self.squash = squash
        self.stroke = max(1, round(side * STROKE))

    def point(self, u: float, v: float) -> Point:
        """Pixel coordinates of the unit point ``(u, v)``."""
        return (self.left + (0.5 + (u - 0.5) * self.squash) * self.side, self.top + v * self.side)

    def _box(self, u0: float, v0: float, u1: float, v1: float) -> list[float]:
        x0, y0 = self.point(min(u0, u1), min(v0, v1))
        x1, y1 = self.point(max(u0, u1), max(v0, v1))
        return [x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)]

    def _width(self, outline: RGB | None) -> int:
        return self.stroke if outline is not None else 0

    def ellipse(self, u0: float, v0: float, u1: float, v1: float, fill: RGB | None, outline: RGB | None = OUTLINE) -> None:
        """An ellipse filling the box from ``(u0, v0)`` to ``(u1, v1)``."""
        self.draw.ellipse(self._box(u0, v0, u1, v1), fill=fill, outline=outline, width=self._width(outline))

    def circle(self, u: float, v: float, radius: float, fill: RGB | None, outline: RGB | None = OUTLINE) -> None:
        """A circle of ``radius`` around ``(u, v)``."""
        self.ellipse(u - radius, v - radius, u + radius, v + radius, fill, outline)

    def rect(
        self,
        u0: float,
        v0: float,
        u1: float,
        v1: float,
        fill: RGB | None,
        outline: RGB | None = OUTLINE,
        radius: float = 0.0,
        corners: tuple[bool, bool, bool, bool] | None = None,
    ) -> None:
        """A rectangle, with corners rounded by ``radius`` (only those in ``corners`` if given)."""
        box = self._box(u0, v0, u1, v1)
        pixels = min(radius * self.side, (box[2] - box[0]) / 2 - 1, (box[3] - box[1]) / 2 - 1)
        if pixels >= 1:
            self.draw.rounded_rectangle(
                box, radius=pixels, fill=fill, outline=outline, width=self._width(outline), corners=corners
            )
        else:
            self.draw.rectangle(box, fill=fill, outline=outline, width=self._width(outline))

    def polygon(self, points: Sequence[Point], fill: RGB | None, outline: RGB | None = OUTLINE) -> None:
        """A closed polygon through the unit ``points``; its outline is centred on the edges (PIL's own
        wide polygon outline fills thin spikes such as a star's arms)."""
        pixels = [self.point(u, v) for u, v in points]
        self.draw.polygon(pixels, fill=fill)
        if outline is not None:
            self.draw.line(pixels + pixels[:2], fill=outline, width=self.stroke, joint="curve")

    def line(self, points: Sequence[Point], fill: RGB, width: float) -> None:
        """A polyline ``width`` (unit) wide, with rounded joints."""
        self.draw.line([self.point(u, v) for u, v in points], fill=fill, width=max(1, round(width * self.side)), joint="curve")

    def blob(self, boxes: Sequence[tuple[float, float, float, float]], fill: RGB, outline: RGB | None = OUTLINE) -> None:
        """Overlapping ellipses (each a box ``u0, v0, u1, v1``) merged into one shape with one outline."""
        if outline is not None:
            s = self.stroke
            for box in boxes:
                x0, y0, x1, y1 = self._box(*box)
                self.draw.ellipse([x0 - s, y0 - s, x1 + s, y1 + s], fill=outline)
        for box in boxes:
            self.draw.ellipse(self._box(*box), fill=fill)

    @staticmethod
    def disc(u: float, v: float, radius: float) -> tuple[float, float, float, float]:
        """The box of a circle, for :meth:`blob`."""
        return (u - radius, v - radius, u + radius, v + radius)

    def limb(self, start: Point, end: Point, width: float, fill: RGB) -> None:
        """An outlined rod with round ends, for arms, legs and stems."""
        for colour, extra in ((OUTLINE, 2 * self.stroke), (fill, 0)):
            pixels = max(1, round(width * self.side) + extra)
            a, b = self.point(*start), self.point(*end)
            self.draw.line([a, b], fill=colour, width=pixels)
            for x, y in (a, b):
                r = pixels / 2
                self.draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)

    def arc(self, u0: float, v0: float, u1: float, v1: float, start: float, end: float, fill: RGB, width: float) -> None:
        """An arc of the ellipse in the box, from ``start`` to ``end`` degrees (clockwise from 3 o'clock)."""
        self.draw.arc(self._box(u0, v0, u1, v1), start, end, fill=fill, width=max(1, round(width * self.side)))
