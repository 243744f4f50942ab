"""The loss curve of a training run, drawn with PIL (no plotting library, the same pixels in every browser).

The line is amber for the plain-LoRA warm-up and green once LoRA-Dash trains its selected directions;
a dashed vertical line marks step t, where the directions were selected. A plain LoRA run is one blue line.
From :data:`SMOOTH_FROM` steps on, the per-step losses are drawn faint under an exponential moving average.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw

from .heatmap import _font, _text_width

WARMUP_COLOUR = (245, 158, 11)  # amber: LoRA warm-up (steps 1..t)
DASH_COLOUR = (5, 150, 105)  # emerald: LoRA-Dash (after step t)
PLAIN_COLOUR = (2, 132, 199)  # sky: a plain LoRA run
_INK, _MUTED, _GRID, _MARK = (31, 41, 55), (107, 114, 128), (229, 231, 235), (79, 70, 229)
SIZE = (720, 280)
#: From this many steps on, a smoothed line is drawn over the faint per-step one.
SMOOTH_FROM = 20
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 16, 34, 36


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low..high``."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step = next(m * step for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(count + 2) if first + i * step <= high + 1e-12]


def render_loss_curve(history: Sequence[dict[str, Any]], selected_at_step: int | None, total: int | None, dash: bool = True) -> Image.Image:
    """The loss of every logged step (``logs/steps.jsonl`` records) against the step, as an RGB image."""
    width, height = SIZE
    image = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    title_font, font = _font(14), _font(11)
    draw.text((_LEFT, 8), "Training loss", fill=_INK, font=title_font)
    points = [(int(r["step"]), float(r["loss"])) for r in history if isinstance(r.get("loss"), (int, float)) and math.isfinite(r["loss"])]
    left, right, top, bottom = _LEFT, width - _RIGHT, _TOP, height - _BOTTOM
    draw.rectangle([left, top, right, bottom], outline=_GRID)
    if not points:
        message = "no steps yet: the curve appears with the first optimizer step"
        draw.text(((left + right - _text_width(draw, message, font)) // 2, (top + bottom) // 2 - 6), message, fill=_MUTED, font=font)
        return image
    last = max(total or 0, points[-1][0], 1)
    low, high = min(loss for _, loss in points), max(loss for _, loss in points)
    pad = (high - low) * 0.08 or max(abs(high) * 0.1, 1e-3)
    low, high = low - pad, high + pad

    def x_of(step: float) -> float:
        return left + (right - left) * step / last

    def y_of(loss: float) -> float:
        return bottom - (bottom - top) * (loss - low) / (high - low)

    for value in _ticks(low, high):
        y = y_of(value)
        draw.line([left, y, right, y], fill=_GRID)
        label = f"{value:.3g}"
        draw.text((left - 6 - _text_width(draw, label, font), y - 6), label, fill=_MUTED, font=font)
    for value in _ticks(0, last):
        x = x_of(value)
        draw.line([x, bottom, x, bottom + 4], fill=_MUTED)
        label = f"{value:g}"
        draw.text((x - _text_width(draw, label, font) / 2, bottom + 6), label, fill=_MUTED, font=font)
    draw.text((right - _text_width(draw, "step", font), height - 14), "step", fill=_MUTED, font=font)
    switch = selected_at_step if dash else None
    if switch is not None and 0 <= switch <= last:
        x = x_of(switch)
        for y in range(top, bottom, 8):
            draw.line([x, y, x, min(y + 4, bottom)], fill=_MARK, width=1)
        label = f"directions selected (t = {switch})"
        draw.text((min(x + 4, right - _text_width(draw, label, font)), top + 3), label, fill=_MARK, font=font)
    def colour_of(step: int) -> tuple[int, int, int]:
        return PLAIN_COLOUR if not dash else (DASH_COLOUR if switch is not None and step > switch else WARMUP_COLOUR)

    smooth = len(points) >= SMOOTH_FROM
    for (s0, l0), (s1, l1) in zip(points, points[1:]):  # every step; faint under the smoothed line
        draw.line([x_of(s0), y_of(l0), x_of(s1), y_of(l1)], fill=_tint(colour_of(s1)) if smooth else colour_of(s1), width=1 if smooth else 2)
    if smooth:
        weight = min(0.5, 10.0 / len(points))  # an EMA over about a tenth of the steps so far
        moment, previous = 0.0, None
        for count, (step, loss) in enumerate(points, start=1):
            moment += weight * (loss - moment)
            average = moment / (1 - (1 - weight) ** count)  # without the pull towards 0 of its start
            if previous is not None:
                draw.line([x_of(previous[0]), y_of(previous[1]), x_of(step), y_of(average)], fill=colour_of(step), width=2)
            previous = (step, average)
    if len(points) == 1:
        step, loss = points[0]
        colour = PLAIN_COLOUR if not dash else WARMUP_COLOUR
        draw.ellipse([x_of(step) - 3, y_of(loss) - 3, x_of(step) + 3, y_of(loss) + 3], fill=colour)
    legend = [("LoRA", PLAIN_COLOUR)] if not dash else [("LoRA warm-up", WARMUP_COLOUR), ("LoRA-Dash", DASH_COLOUR)]
    x = _LEFT + _text_width(draw, "Training loss", title_font) + 28  # beside the title, clear of the image's toolbar
    for label, colour in legend:
        draw.line([x, 17, x + 14, 17], fill=colour, width=3)
        draw.text((x + 18, 10), label, fill=_INK, font=font)
        x += 18 + _text_width(draw, label, font) + 16
    if smooth:
        draw.text((x, 10), "(faint: every step; bold: smoothed)", fill=_MUTED, font=font)
    return image


def _tint(colour: tuple[int, int, int], amount: float = 0.6) -> tuple[int, int, int]:
    """``colour`` mixed with white."""
    return tuple(round(c + (255 - c) * amount) for c in colour)  # type: ignore[return-value]
