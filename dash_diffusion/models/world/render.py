"""Compose one picture: background, soft shadow, the object (turned, tilted, lit), anti-aliased.

Everything is drawn at :data:`SUPERSAMPLE` times the output size and box-filtered down, so edges are
smooth; the backgrounds are cached, so one 128 px image takes a few milliseconds.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .backdrops import backdrop
from .objects import DRAWERS
from .pen import Pen
from .scene import Scene

SUPERSAMPLE = 3
_PAD_SIDE, _PAD_TOP, _PAD_BOTTOM = 0.2, 0.1, 0.12
_SCENE_TINT = {  # how the scene's light colours the object (red, green, blue factors)
    "night": (0.88, 0.9, 0.97),
    "underwater": (0.84, 0.94, 1.0),
    "desert": (1.0, 0.97, 0.9),
    "snow": (0.97, 0.99, 1.03),
}
_SHADOW_STRENGTH = {"night": 0.55, "underwater": 0.6}
_WARMTH = 0.07


@lru_cache(maxsize=None)
def _tint_table(scene: str) -> list[int] | None:
    factors = _SCENE_TINT.get(scene)
    if factors is None:
        return None
    table: list[int] = []
    for factor in factors:
        table += [min(255, round(i * factor)) for i in range(256)]
    return table + list(range(256))


@lru_cache(maxsize=None)
def _shadow_sprite() -> Image.Image:
    """A soft dark ellipse (as an alpha mask) that is stretched under every object."""
    sprite = Image.new("L", (96, 32), 0)
    ImageDraw.Draw(sprite).ellipse([12, 8, 84, 24], fill=255)
    return sprite.filter(ImageFilter.GaussianBlur(4))


def _object_layer(scene: Scene, box: float) -> tuple[Image.Image, tuple[float, float]]:
    """The object on a transparent layer, and the pixel of the layer where its base centre is."""
    drawer = DRAWERS[scene.object]
    width = math.ceil(box * (1 + 2 * _PAD_SIDE))
    height = math.ceil(box * (1 + _PAD_TOP + _PAD_BOTTOM))
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    left, top = (width - box) / 2, box * _PAD_TOP
    pen = Pen(ImageDraw.Draw(layer), left, top, box, squash=1.0 - drawer.squash * abs(scene.turn))
    drawer.draw(pen, scene)
    if drawer.faces and scene.turn < 0:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    table = _tint_table(scene.scene)
    if table is not None:
        layer = layer.point(table)
    feet = (width / 2, top + box)
    tilt = scene.tilt * drawer.tilt
    if abs(tilt) >= 0.5:
        layer = layer.rotate(tilt, resample=Image.Resampling.BILINEAR, center=feet)
    return layer, feet


def _shadow(image: Image.Image, scene: Scene, x: float, y: float, width: float) -> None:
    height = max(2, round(width * 0.3))
    width = max(4, round(width))
    mask = _shadow_sprite().resize((width, height), Image.Resampling.BILINEAR)
    strength = 0.42 * _SHADOW_STRENGTH.get(scene.scene, 1.0)
    mask = mask.point([round(i * strength) for i in range(256)])
    image.paste((20, 16, 24), (round(x - width / 2), round(y - height / 2)), mask)


def _light(image: Image.Image, scene: Scene) -> Image.Image:
    """Brightness and warmth over the whole picture."""
    warmth = _WARMTH * scene.warmth
    gains = np.array([1.0 + warmth, 1.0, 1.0 - warmth], dtype=np.float32) * scene.brightness
    pixels = np.asarray(image, dtype=np.float32) * gains
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")


def render(scene: Scene, size: int = 128) -> Image.Image:
    """Draw ``scene`` as an RGB ``size`` x ``size`` image (the same pixels every time)."""
    if size < 8:
        raise ValueError(f"size {size} is too small; use at least 8 pixels")
    return render_over(scene, backdrop(scene.scene, scene.backdrop, size * SUPERSAMPLE).copy())


def render_over(scene: Scene, background: Image.Image) -> Image.Image:
    """Draw ``scene``'s object and its shadow onto ``background`` (a square RGB canvas of ``SUPERSAMPLE``
    times the output size, changed in place), then shrink it and light it as ``scene`` says."""
    canvas = background.width
    box = scene.size * canvas
    x, y = scene.x * canvas, scene.ground * canvas
    _shadow(background, scene, x, y, box * DRAWERS[scene.object].footprint)
    layer, (fx, fy) = _object_layer(scene, box)
    background.paste(layer, (round(x - fx), round(y - fy)), layer)
    return _light(background.reduce(SUPERSAMPLE), scene)
