"""Objects of the world drawn on plain backgrounds, like the pictures of ``samples/robot``.

The world only draws its eight scenes; the subject's sample photos stand on a flat colour, a vertical
gradient or a bare two-tone room. :func:`render_plain` draws a :class:`~..world.Scene`'s object (same
drawer, shadow, supersampling and lighting as :func:`~..world.render`) on such a background instead.
It uses the world renderer's internal steps, so it draws exactly the same object. The scene's
``scene`` field should be one without a colour tint on the object (``"room"``, say); it is not a label
of the result.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..world import Scene
from ..world.palette import lighten, mix, shade
from ..world.render import SUPERSAMPLE, render_over
from ..world.vocab import RGB

KINDS: tuple[str, ...] = ("flat", "gradient", "room")


def _colour(rng: np.random.Generator) -> RGB:
    """A random background colour, mostly light and soft (pastel), sometimes mid-tone."""
    base = tuple(int(v) for v in rng.integers(0, 256, 3))
    return lighten(base, float(rng.uniform(0.35, 0.85))) if rng.random() < 0.8 else mix(base, (128, 128, 128), 0.3)


def background(kind: str, canvas: int, rng: np.random.Generator) -> Image.Image:
    """A ``canvas`` px square background: ``"flat"`` colour, vertical ``"gradient"`` between two
    colours, or ``"room"`` (a wall above a floor with perspective boards, at 55-70% of the height)."""
    if kind == "flat":
        return Image.new("RGB", (canvas, canvas), _colour(rng))
    if kind == "gradient":
        top, bottom = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
        t = np.linspace(0.0, 1.0, canvas, dtype=np.float32)[:, None]
        column = (top * (1 - t) + bottom * t).round().astype(np.uint8)
        return Image.fromarray(np.repeat(column[:, None, :], canvas, axis=1), "RGB")
    if kind == "room":
        wall, floor = _colour(rng), shade(_colour(rng), float(rng.uniform(0.2, 0.5)))
        image = Image.new("RGB", (canvas, canvas), wall)
        draw = ImageDraw.Draw(image)
        horizon = round(canvas * rng.uniform(0.55, 0.7))
        draw.rectangle([0, horizon, canvas, canvas], fill=floor)
        board = shade(floor, 0.15)
        for x in range(-canvas, 2 * canvas, max(8, canvas // 9)):
            draw.line([(canvas / 2 + (x - canvas / 2) * 0.35, horizon), (x, canvas)], fill=board, width=max(1, canvas // 150))
        return image
    raise ValueError(f"unknown background kind {kind!r}; choose one of {', '.join(KINDS)}")


def render_plain(scene: Scene, kind: str, rng: np.random.Generator, size: int = 128) -> Image.Image:
    """``scene``'s object (placed by its size, x and ground) on a random ``kind`` background."""
    return render_over(scene, background(kind, size * SUPERSAMPLE, rng))
