"""Save a benchmark's rendered pictures as one image: one row per variant, pictures side by side."""

from __future__ import annotations

from pathlib import Path


def save_picture_rows(rows: list[list], path: Path, size: int = 128) -> None:
    """Paste ``rows`` of PIL pictures (each ``size`` px square) on a white sheet and save it to ``path``."""
    from PIL import Image

    sheet = Image.new("RGB", (size * max(len(row) for row in rows), size * len(rows)), "white")
    for row_index, pictures in enumerate(rows):
        for column, picture in enumerate(pictures):
            sheet.paste(picture, (size * column, size * row_index))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
