"""The picture ``make demo`` writes: the training photos on top, then one row per prompt with the base
model's images (class prompt) beside the adapter's (instance prompt) at the same seeds."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps

TILE = 128
GAP = 6
LABEL_HEIGHT = 16
BACKGROUND = (250, 250, 247)
INK = (40, 40, 40)


@dataclass(frozen=True)
class ComparisonRow:
    """One prompt's images: the base model's ``base_prompt`` and the adapter's ``adapter_prompt``,
    seed for seed (``base[i]`` and ``adapter[i]`` share a seed)."""

    base_prompt: str
    adapter_prompt: str
    base: list[Image.Image]
    adapter: list[Image.Image]


def _tile(image: Image.Image) -> Image.Image:
    """``image`` fitted into a ``TILE`` square (centre crop of the shorter side)."""
    return ImageOps.fit(image.convert("RGB"), (TILE, TILE), Image.Resampling.LANCZOS)


def compose_grid(training_photos: list[Image.Image], rows: list[ComparisonRow]) -> Image.Image:
    """One image: a labelled strip of the training photos, then for each row ``base | adapter``.

    Every row must have the same number of seeds; the photos strip wraps to the grid's width.
    """
    if not rows or not training_photos:
        raise ValueError("compose_grid needs training photos and at least one comparison row")
    seeds = len(rows[0].base)
    if any(len(row.base) != seeds or len(row.adapter) != seeds for row in rows):
        raise ValueError("every comparison row needs the same number of base and adapter images")
    columns = 2 * seeds
    width = columns * TILE + (columns + 2) * GAP
    photo_columns = max(1, (width - GAP) // (TILE + GAP))
    photo_rows = -(-len(training_photos) // photo_columns)
    height = LABEL_HEIGHT + photo_rows * (TILE + GAP) + len(rows) * (LABEL_HEIGHT + TILE + GAP) + GAP
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 2), "training photos", fill=INK)
    y = LABEL_HEIGHT
    for index, photo in enumerate(training_photos):
        row, column = divmod(index, photo_columns)
        canvas.paste(_tile(photo), (GAP + column * (TILE + GAP), y + row * (TILE + GAP)))
    y += photo_rows * (TILE + GAP)
    adapter_x = GAP + seeds * (TILE + GAP) + 2 * GAP
    for row in rows:
        draw.text((GAP, y + 2), f"base: {row.base_prompt}", fill=INK)
        draw.text((adapter_x, y + 2), f"adapter: {row.adapter_prompt}", fill=INK)
        y += LABEL_HEIGHT
        for index, (base, adapted) in enumerate(zip(row.base, row.adapter)):
            canvas.paste(_tile(base), (GAP + index * (TILE + GAP), y))
            canvas.paste(_tile(adapted), (adapter_x + index * (TILE + GAP), y))
        y += TILE + GAP
    return canvas
