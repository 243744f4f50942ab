"""Image grids for looking at a run: rows are prompts, columns are images (or adapters).

Every cell is the image resized to ``cell x cell`` (bicubic); each row starts with a white band
holding its label (``p03  a sks dog on a cobblestone street``), and an optional header band names
the columns. Missing cells stay grey.
"""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

_BACKGROUND = (255, 255, 255)
_EMPTY = (128, 128, 128)
_TEXT = (0, 0, 0)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def image_grid(cells: Sequence[Sequence[Image.Image | None]], row_labels: Sequence[str], cell: int, column_labels: Sequence[str] | None = None) -> Image.Image:
    """A grid of ``len(cells)`` rows by ``max(len(row))`` columns of ``cell``-pixel squares with labels."""
    columns = max((len(row) for row in cells), default=0) or 1
    band = max(12, cell // 12)
    font = _font(max(8, band - 4))
    header = band if column_labels else 0
    grid = Image.new("RGB", (columns * cell, header + len(cells) * (band + cell)), _BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(column_labels or []):
        draw.text((c * cell + 2, 1), _fit(draw, label, font, cell - 4), fill=_TEXT, font=font)
    for r, (row, label) in enumerate(zip(cells, row_labels)):
        top = header + r * (band + cell)
        draw.text((2, top + 1), _fit(draw, label, font, columns * cell - 4), fill=_TEXT, font=font)
        for c in range(columns):
            image = row[c] if c < len(row) else None
            box = (c * cell, top + band)
            if image is None:
                grid.paste(_EMPTY, (box[0], box[1], box[0] + cell, box[1] + cell))
            else:
                grid.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.BICUBIC), box)
    return grid
