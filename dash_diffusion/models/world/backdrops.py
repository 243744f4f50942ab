"""The background of each scene, drawn once per (scene, variant, canvas size) and cached.

Each scene has :data:`~.scene.BACKDROPS` fixed variants (slightly different horizon, colours and
props, from a seeded generator), all with a distinct look: sky, sea and sand for the beach; wall and
wooden floor for the room; a green meadow; white snow under a pale sky; a dark blue night with stars
and a moon; buildings and a pavement for the city; orange dunes for the desert; blue water, bubbles
and a sandy sea bed under the sea. Objects stand between 78% and 95% of the height, below every
horizon.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .palette import mix, shade
from .vocab import RGB, SCENES



def _gradient(image: Image.Image, top: int, bottom: int, start: RGB, end: RGB) -> None:
    """Fill rows ``top``..``bottom`` with a vertical gradient from ``start`` to ``end``."""
    height = max(1, bottom - top)
    t = np.linspace(0.0, 1.0, height)[:, None]
    column = (np.array(start)[None, :] * (1 - t) + np.array(end)[None, :] * t).round().astype(np.uint8)
    strip = Image.fromarray(column[:, None, :].repeat(image.width, axis=1), "RGB")
    image.paste(strip, (0, top))


def _wave(width: int, base: float, amplitude: float, period: float, phase: float, bottom: float) -> list[tuple[float, float]]:
    """A closed polygon under a sine-shaped top edge (hills, dunes, waves)."""
    points = [(x, base + amplitude * math.sin(2 * math.pi * x / period + phase)) for x in np.linspace(0, width, 25)]
    return points + [(width, bottom), (0, bottom)]


def _beach(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    horizon = round(c * (0.44 + 0.03 * variant))
    shore = horizon + round(c * 0.12)
    _gradient(image, 0, horizon, (96, 176, 238), (206, 234, 250))
    _gradient(image, horizon, shore, (30, 110, 185), (64, 164, 206))
    _gradient(image, shore, c, (240, 218, 164), (226, 196, 132))
    draw.polygon(_wave(c, shore, c * 0.012, c * 0.45, variant, shore + c * 0.03), fill=(252, 250, 240))
    draw.polygon(_wave(c, shore + c * 0.012, c * 0.012, c * 0.45, variant, shore + c * 0.04), fill=(240, 218, 164))
    for _ in range(3):
        y = rng.uniform(horizon + c * 0.02, shore - c * 0.03)
        x = rng.uniform(0, c * 0.8)
        draw.line([(x, y), (x + c * 0.15, y)], fill=(200, 230, 245), width=max(1, c // 120))
    sun = c * (0.12 + 0.7 * (variant % 2))
    draw.ellipse([sun, c * 0.06, sun + c * 0.12, c * 0.18], fill=(255, 236, 120))


def _room(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    walls = ((234, 219, 190), (206, 222, 234), (238, 208, 200), (216, 228, 198))
    wall = walls[variant]
    horizon = round(c * 0.6)
    floor = (172, 120, 78)
    image.paste(wall, (0, 0, c, horizon))
    _gradient(image, horizon, c, shade(floor, 0.12), floor)
    board = shade(floor, 0.22)
    for x in np.arange(-c, 2 * c, c / 8):
        draw.line([(c / 2 + (x - c / 2) * 0.35, horizon), (x, c)], fill=board, width=max(1, c // 160))
    draw.rectangle([0, horizon - c * 0.025, c, horizon], fill=mix(wall, (255, 255, 255), 0.5))
    left = c * (0.08 if variant % 2 == 0 else 0.66)
    if variant < 2:  # a window with sky
        draw.rectangle([left, c * 0.1, left + c * 0.26, c * 0.38], fill=(250, 250, 246))
        draw.rectangle([left + c * 0.02, c * 0.12, left + c * 0.24, c * 0.36], fill=(150, 205, 240))
        draw.line([(left + c * 0.13, c * 0.12), (left + c * 0.13, c * 0.36)], fill=(250, 250, 246), width=max(1, c // 80))
    else:  # a framed picture
        draw.rectangle([left, c * 0.14, left + c * 0.22, c * 0.32], fill=(120, 80, 50))
        art = tuple(int(v) for v in rng.integers(120, 230, 3))
        draw.rectangle([left + c * 0.02, c * 0.16, left + c * 0.2, c * 0.3], fill=art)


def _grass(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    horizon = round(c * (0.5 + 0.03 * variant))
    _gradient(image, 0, horizon + c // 10, (110, 184, 244), (222, 240, 252))
    draw.polygon(_wave(c, horizon, c * 0.03, c * 1.3, variant * 1.7, c), fill=(120, 186, 86))
    _gradient(image, horizon + round(c * 0.06), c, (96, 180, 66), (62, 150, 48))
    draw.polygon(_wave(c, horizon + c * 0.06, c * 0.015, c * 0.8, variant, horizon + c * 0.1), fill=(96, 180, 66))
    for _ in range(40):
        x, y = rng.uniform(0, c), rng.uniform(horizon + c * 0.08, c)
        h = c * 0.02 * (0.5 + (y - horizon) / c)
        draw.line([(x, y), (x + rng.uniform(-h, h) * 0.4, y - h)], fill=(46, 122, 40), width=max(1, c // 160))
    for _ in range(2):
        x, y = rng.uniform(0, c * 0.8), rng.uniform(c * 0.05, c * 0.25)
        for dx, r in ((0.0, 0.05), (0.06, 0.065), (0.13, 0.045)):
            draw.ellipse([x + dx * c - r * c, y - r * c, x + dx * c + r * c, y + r * c], fill=(252, 252, 252))


def _snow(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    horizon = round(c * (0.52 + 0.03 * variant))
    _gradient(image, 0, c, (176, 198, 224), (226, 234, 244))
    for base, amp, colour in ((0.0, 0.14, (236, 242, 250)), (0.05, 0.08, (214, 226, 242))):
        draw.polygon(_wave(c, horizon - c * base, c * amp, c * 0.7, variant * 2.1 + base * 9, c), fill=colour)
    _gradient(image, horizon + round(c * 0.08), c, (236, 242, 250), (250, 252, 255))
    draw.polygon(_wave(c, horizon + c * 0.08, c * 0.02, c * 0.9, variant, horizon + c * 0.12), fill=(236, 242, 250))
    for _ in range(45):
        x, y = rng.uniform(0, c), rng.uniform(0, c)
        r = c * rng.uniform(0.004, 0.009)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255) if y < horizon else (200, 214, 234))


def _night(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    horizon = round(c * (0.56 + 0.03 * variant))
    _gradient(image, 0, horizon + c // 10, (8, 14, 46), (34, 50, 104))
    for _ in range(40):
        x, y = rng.uniform(0, c), rng.uniform(0, horizon)
        r = c * rng.uniform(0.003, 0.008)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 250, 210))
    mx = c * (0.72 if variant % 2 == 0 else 0.14)
    draw.ellipse([mx, c * 0.06, mx + c * 0.14, c * 0.2], fill=(250, 242, 190))
    draw.ellipse([mx + c * 0.045, c * 0.04, mx + c * 0.175, c * 0.17], fill=(14, 22, 60))
    draw.polygon(_wave(c, horizon, c * 0.03, c * 1.1, variant * 1.3, c), fill=(22, 46, 58))
    _gradient(image, horizon + round(c * 0.05), c, (22, 46, 58), (14, 30, 42))


def _city(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    horizon = round(c * 0.64)
    _gradient(image, 0, horizon, (146, 196, 238), (222, 236, 246))
    x = -rng.uniform(0, c * 0.1)
    while x < c:
        w = c * rng.uniform(0.12, 0.2)
        top = c * rng.uniform(0.12, 0.45)
        tone = int(rng.integers(110, 175))
        body = (tone, tone - 6, tone + 8 - 10 * (variant % 2))
        draw.rectangle([x, top, x + w, horizon], fill=body, outline=shade(body, 0.3), width=max(1, c // 200))
        for wy in np.arange(top + c * 0.03, horizon - c * 0.04, c * 0.06):
            for wx in np.arange(x + c * 0.025, x + w - c * 0.03, c * 0.05):
                lit = (250, 236, 160) if rng.random() < 0.25 else (80, 96, 120)
                draw.rectangle([wx, wy, wx + c * 0.025, wy + c * 0.03], fill=lit)
        x += w + c * rng.uniform(0.0, 0.03)
    draw.rectangle([0, horizon, c, horizon + c * 0.08], fill=(72, 74, 82))
    for dx in np.arange(c * 0.02, c, c * 0.18):
        draw.rectangle([dx, horizon + c * 0.035, dx + c * 0.08, horizon + c * 0.045], fill=(240, 240, 240))
    _gradient(image, horizon + round(c * 0.08), c, (186, 186, 190), (168, 168, 174))
    for y in np.arange(horizon + c * 0.08, c, c * 0.07):
        draw.line([(0, y), (c, y)], fill=(150, 150, 156), width=max(1, c // 200))


def _desert(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    horizon = round(c * (0.5 + 0.03 * variant))
    _gradient(image, 0, horizon + c // 10, (250, 206, 132), (252, 236, 196))
    sun = c * (0.15 + 0.6 * (variant % 2))
    draw.ellipse([sun, c * 0.08, sun + c * 0.16, c * 0.24], fill=(255, 248, 220))
    draw.polygon(_wave(c, horizon, c * 0.05, c * 0.9, variant * 1.9, c), fill=(226, 160, 84))
    draw.polygon(_wave(c, horizon + c * 0.12, c * 0.04, c * 1.2, variant + 2.0, c), fill=(238, 184, 106))
    _gradient(image, horizon + round(c * 0.2), c, (238, 184, 106), (232, 172, 96))
    cx = c * rng.uniform(0.05, 0.9)
    cy = horizon + c * 0.05
    w = max(2, c // 50)
    draw.line([(cx, cy), (cx, cy - c * 0.1)], fill=(70, 120, 60), width=w)
    draw.line([(cx - c * 0.03, cy - c * 0.07), (cx - c * 0.03, cy - c * 0.04), (cx, cy - c * 0.04)], fill=(70, 120, 60), width=w)
    for _ in range(25):
        x, y = rng.uniform(0, c), rng.uniform(horizon + c * 0.2, c)
        draw.line([(x, y), (x + c * 0.04, y)], fill=(214, 150, 82), width=max(1, c // 200))


def _underwater(image: Image.Image, draw: ImageDraw.ImageDraw, c: int, rng: np.random.Generator, variant: int) -> None:
    bed = round(c * (0.68 + 0.02 * variant))
    _gradient(image, 0, bed + c // 10, (70, 176, 214), (14, 74, 138))
    for _ in range(3):
        x = rng.uniform(0, c)
        draw.polygon([(x, 0), (x + c * 0.08, 0), (x - c * 0.1, bed), (x - c * 0.14, bed)], fill=(58, 150, 196))
    draw.polygon(_wave(c, bed, c * 0.02, c * 0.8, variant, c), fill=(206, 188, 132))
    _gradient(image, bed + round(c * 0.03), c, (206, 188, 132), (186, 166, 110))
    for _ in range(4):
        x = rng.uniform(0, c)
        top = bed - c * rng.uniform(0.1, 0.22)
        points = [(x + c * 0.02 * math.sin(i), bed + c * 0.02 - (bed + c * 0.02 - top) * i / 6) for i in range(7)]
        draw.line(points, fill=(36, 130, 70), width=max(2, c // 60), joint="curve")
    for _ in range(10):
        x, y = rng.uniform(0, c), rng.uniform(0, bed)
        r = c * rng.uniform(0.008, 0.02)
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(210, 240, 250), width=max(1, c // 200))


_PAINTERS = {
    "beach": _beach,
    "room": _room,
    "grass": _grass,
    "snow": _snow,
    "night": _night,
    "city": _city,
    "desert": _desert,
    "underwater": _underwater,
}
assert set(_PAINTERS) == set(SCENES), "every scene needs a painter"


@lru_cache(maxsize=256)
def backdrop(scene: str, variant: int, canvas: int) -> Image.Image:
    """The background of ``scene`` (variant ``variant``) on a ``canvas`` square; do not modify it."""
    image = Image.new("RGB", (canvas, canvas))
    rng = np.random.default_rng([SCENES.index(scene), variant, 7919])
    _PAINTERS[scene](image, ImageDraw.Draw(image), canvas, rng, variant)
    return image
