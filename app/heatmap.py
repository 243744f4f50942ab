"""The picture of an adapter's task-specific directions, drawn with numpy and PIL (no plotting library).

Rows are the adapted layers, columns the singular-value positions (0 = largest sigma); the colour is
the change rate of that core direction on a log scale, and white boxes mark the positions LoRA-Dash
selected. A bar strip on top counts how many layers selected each position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .directions import LayerDirections

#: viridis, sampled at 0, 1/4, 1/2, 3/4 and 1
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
_MISSING = (229, 231, 235)
_INK = (31, 41, 55)
_MUTED = (107, 114, 128)
_MARK = (255, 255, 255)
_BAR = (79, 70, 229)
_TARGET_SIDE = 720


def colormap(values: np.ndarray) -> np.ndarray:
    """RGB uint8 for values in [0, 1] (NaN gives light grey)."""
    clipped = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * (len(_ANCHORS) - 1)
    low = np.minimum(np.floor(clipped).astype(int), len(_ANCHORS) - 2)
    frac = (clipped - low)[..., None]
    rgb = _ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac
    rgb[np.isnan(values)] = _MISSING
    return rgb.round().astype(np.uint8)


def short_layer_name(name: str) -> str:
    """``unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`` -> ``down1.a0.t0.attn1.to_q``."""
    text = name.removeprefix("unet.")
    for long, short in (("down_blocks.", "down"), ("up_blocks.", "up"), ("mid_block.", "mid."), ("attentions.", "a"),
                        ("transformer_blocks.", "t"), ("text_model.encoder.layers.", "L"), ("self_attn.", "")):
        text = text.replace(long, short)
    return text


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def _matrix(layers: Sequence[LayerDirections]) -> np.ndarray:
    width = max(layer.rates.shape[0] for layer in layers)
    matrix = np.full((len(layers), width), np.nan)
    for row, layer in enumerate(layers):
        matrix[row, : layer.rates.shape[0]] = layer.rates
    return matrix


def render_heatmap(layers: Sequence[LayerDirections]) -> Image.Image:
    """The heatmap of ``layers`` (at least one) as an RGB image of roughly 1000 x 800 pixels or more."""
    if not layers:
        raise ValueError("render_heatmap needs at least one layer")
    matrix = _matrix(layers)
    rows, cols = matrix.shape
    cell_w = max(1, min(16, _TARGET_SIDE // cols))
    cell_h = max(1, min(14, _TARGET_SIDE // rows))
    logs = np.log10(np.where(matrix > 0, matrix, np.nan))
    finite = logs[np.isfinite(logs)]
    low, high = (float(np.percentile(finite, 1)), float(finite.max())) if finite.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    scaled = (logs - low) / (high - low)
    scaled[np.isnan(scaled) & ~np.isnan(matrix)] = 0.0  # zero rates: bottom of the scale

    title_font, font, small = _font(18), _font(13), _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [short_layer_name(layer.name) for layer in layers]
    label_every = max(1, math.ceil(14 / cell_h))
    margin_left = 16 + max(_text_width(probe, label, font) for label in labels[::label_every])
    strip_h, top = 44, 72
    grid_w, grid_h = cols * cell_w, rows * cell_h
    width = max(margin_left + grid_w + 120, 720)
    bar_h = max(grid_h, 120)
    height = top + strip_h + 8 + bar_h + 58
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((16, 12), "Task-specific directions: change rate per layer and singular-value position", fill=_INK, font=title_font)
    draw.text((16, 40), "colour = change rate |u_i^T dW v_i| / sigma_i (log scale)   ·   white box = direction selected by LoRA-Dash",
              fill=_MUTED, font=small)

    # how many layers picked each position
    counts = np.zeros(cols)
    for layer in layers:
        for position in layer.selected:
            if 0 <= position < cols:
                counts[position] += 1
    grid_top = top + strip_h + 8
    if counts.max() > 0:
        for position, count in enumerate(counts):
            if count:
                bar = max(1, round(strip_h * count / counts.max()))
                x0 = margin_left + position * cell_w
                draw.rectangle([x0, top + strip_h - bar, x0 + max(cell_w - 2, 0), top + strip_h - 1], fill=_BAR)
    draw.text((margin_left + grid_w + 8, top + strip_h - 32), f"times selected\n(max {int(counts.max())})", fill=_MUTED, font=small)

    cells = Image.fromarray(colormap(scaled)).resize((grid_w, grid_h), Image.Resampling.NEAREST)
    canvas.paste(cells, (margin_left, grid_top))
    for row, layer in enumerate(layers):
        y0 = grid_top + row * cell_h
        if row % label_every == 0:
            draw.text((margin_left - 8, y0 + cell_h / 2), labels[row], fill=_INK, font=font, anchor="rm")
        for position in layer.selected:
            if 0 <= position < cols:
                x0 = margin_left + position * cell_w
                if cell_w >= 4 and cell_h >= 4:
                    draw.rectangle([x0, y0, x0 + cell_w - 1, y0 + cell_h - 1], outline=_MARK, width=1 + (min(cell_w, cell_h) >= 10))
                else:
                    draw.rectangle([x0 - 1, y0 - 1, x0 + cell_w, y0 + cell_h], fill=_MARK)

    # x axis
    axis_y = grid_top + grid_h + 4
    for tick in sorted({0, cols // 4, cols // 2, 3 * cols // 4, cols - 1}):
        x = margin_left + tick * cell_w + cell_w / 2
        draw.line([x, axis_y, x, axis_y + 4], fill=_MUTED)
        draw.text((x, axis_y + 6), str(tick), fill=_INK, font=font, anchor="mt")
    draw.text((margin_left + grid_w / 2, axis_y + 24), "singular-value position (0 = largest singular value)", fill=_MUTED, font=small, anchor="mt")

    # colour bar
    bar_x = margin_left + grid_w + 24
    ramp = colormap(np.linspace(1, 0, bar_h)[:, None].repeat(14, axis=1))
    canvas.paste(Image.fromarray(ramp), (bar_x, grid_top))
    for power in range(math.ceil(low), math.floor(high) + 1):
        y = grid_top + (high - power) / (high - low) * (bar_h - 1)
        draw.line([bar_x + 14, y, bar_x + 18, y], fill=_MUTED)
        draw.text((bar_x + 22, y), f"1e{power}", fill=_INK, font=small, anchor="lm")
    if math.floor(high) < math.ceil(low):  # less than one decade: label the ends
        draw.text((bar_x + 20, grid_top), f"{10 ** high:.2g}", fill=_INK, font=small, anchor="lt")
        draw.text((bar_x + 20, grid_top + bar_h - 1), f"{10 ** low:.2g}", fill=_INK, font=small, anchor="lb")
    return canvas
