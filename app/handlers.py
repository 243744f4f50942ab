"""The functions behind the UI's events: check what the browser sent, call the engine, answer in words.

Every handler turns a :class:`~dash_diffusion.errors.DashError` (bad input, a file for another model,
a name outside the adapters folder, ...) into a toast (``gr.Warning``) and a status line; nothing the
user sends produces a server traceback. Unexpected failures are logged once and reported in one line.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from dash_diffusion.errors import DashError

from .directions import TABLE_HEADERS, directions_table, metadata_markdown, metadata_summary, read_directions
from .engine import Engine, Picks
from .heatmap import render_heatmap
from .infotext import lora_tag_name
from .library import AdapterEntry, AdapterLibrary
from .settings import RenderSettings, random_seed
from .uploads import store_upload

logger = logging.getLogger("app")

NUM_SLOTS = 4
WEIGHT_MIN, WEIGHT_MAX = -1.0, 2.0
NONE_CHOICE = ("none", "")
COMPARE_BASE = "Base model vs the adapters above"
COMPARE_PAIR = "Adapter A vs adapter B"
COMPARE_MODES = (COMPARE_BASE, COMPARE_PAIR)


def _failure(error: BaseException, what: str) -> str:
    """Status text for a failed action; warns in the browser, logs unexpected errors."""
    if isinstance(error, DashError):
        message = str(error)
    else:
        logger.error("%s failed", what, exc_info=error)
        message = f"{what} failed ({type(error).__name__}: {error}); the server log has the details"
    gr.Warning(message)
    return f"**Could not {what}:** {message}"


def _progress_callback(progress: Any, label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress((done, total), desc=label, unit="steps")

    return report


class Handlers:
    """Event functions bound to one engine and one adapters folder."""

    def __init__(self, engine: Engine, library: AdapterLibrary, max_upload_bytes: int) -> None:
        self.engine = engine
        self.library = library
        self.max_upload_bytes = max_upload_bytes

    # ----- adapters -------------------------------------------------------------------------------
    def choices(self) -> list[tuple[str, str]]:
        """Dropdown choices: ``none`` then every adapter as (label, relative name)."""
        return [NONE_CHOICE] + [(entry.label, entry.name) for entry in self.library.scan()]

    def refresh(self, *values: str | None) -> list[Any]:
        """New choices for every adapter dropdown; a value whose adapter vanished goes back to none."""
        choices = self.choices()
        known = {value for _, value in choices}
        return [gr.update(choices=choices, value=value if value in known else "") for value in values]

    def _pick(self, name: str | None, weight: object) -> tuple[AdapterEntry, float] | None:
        if not name:
            return None
        entry = self.library.resolve(name)
        try:
            value = float(weight)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DashError(f"weight of '{name}' must be a number, got {weight!r}") from None
        if not (math.isfinite(value) and WEIGHT_MIN <= value <= WEIGHT_MAX):
            raise DashError(f"weight of '{name}' must be from {WEIGHT_MIN:g} to {WEIGHT_MAX:g}, got {weight!r}")
        return entry, value

    def picks(self, slots: Sequence[object]) -> Picks:
        """``[(entry, weight), ...]`` from flat (name, weight, name, weight, ...) slot values."""
        pairs = [self._pick(slots[i], slots[i + 1]) for i in range(0, len(slots), 2)]  # type: ignore[arg-type]
        return [pair for pair in pairs if pair is not None]

    def adapter_picked(self, name: str | None, prompt: str | None) -> tuple[Any, str]:
        """Fill in the adapter's trigger prompt (unless the prompt was written by hand) and describe it."""
        if not name:
            return gr.update(), ""
        try:
            entry = self.library.resolve(name)
        except DashError as error:
            return gr.update(), _failure(error, "use this adapter")
        trigger = entry.trigger_prompt
        current = (prompt or "").strip()
        triggers = {e.trigger_prompt for e in self.library.scan() if e.trigger_prompt}
        new_prompt = trigger if trigger and (not current or current in triggers) else gr.update()
        meta = entry.metadata or {}
        facts = [entry.kind]
        if meta.get("rank") is not None:
            facts.append(f"r={meta['rank']}, s={meta.get('num_directions')}, t={meta.get('warmup_steps')}, {meta.get('global_step', '?')} steps")
        if meta.get("base_model"):
            facts.append(f"base `{meta['base_model']}`")
        note = f"**{entry.name}**: " + ", ".join(facts)
        if trigger:
            note += f". Trigger prompt: `{trigger}`"
        return new_prompt, note

    def upload(self, file_path: str | None, *picker_values: str | None) -> list[Any]:
        """Check an uploaded file, store it in ``uploads/`` and put it in the first free adapter slot.

        Returns the file box (cleared), the status text and one update per adapter dropdown
        (the slots first, then the compare and inspect pickers).
        """
        untouched = [gr.update() for _ in picker_values]
        if not file_path:
            return [None, "", *untouched]
        original = Path(file_path).name
        try:
            info = self.engine.check_upload(file_path, original, self.max_upload_bytes)
            stored = store_upload(file_path, original, self.library.uploads_dir)
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            return [None, _failure(error, f"use '{original}'"), *untouched]
        name = stored.relative_to(self.library.root).as_posix()
        values = list(picker_values)
        slot_count = min(NUM_SLOTS, len(values))
        free = next((i for i in range(slot_count) if not values[i]), 0)
        values[free] = name
        kind = "LoRA-Dash" if info.metadata else "LoRA"
        status = f"Accepted **{name}**: {kind}, {info.layout} layout, rank {info.rank}, {info.num_modules} layers; it is in adapter slot {free + 1}."
        return [None, status, *self.refresh(*values)]

    # ----- generation -----------------------------------------------------------------------------
    def generate(
        self, prompt: str, negative: str, seed: float, steps: float, guidance: float, width: float, height: float,
        num_images: float, scheduler: str,
        a1: str | None, w1: float, a2: str | None, w2: float, a3: str | None, w3: float, a4: str | None, w4: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, str]:
        """Images for the prompt with the adapters of the four slots, and a status line."""
        started = time.perf_counter()
        try:
            settings = RenderSettings(prompt, negative, seed, steps, guidance, width, height, num_images, scheduler).checked()
            picks = self.picks([a1, w1, a2, w2, a3, w3, a4, w4])
            images = self.engine.render(settings, picks, _progress_callback(progress, "generating"))
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            return gr.skip(), _failure(error, "generate")
        gallery = [(image, f"seed {settings.seed + i}") for i, image in enumerate(images)]
        used = ", ".join(f"{entry.name} × {weight:g}" for entry, weight in picks) or "none (base model)"
        seeds = f"{settings.seed}" if len(images) == 1 else f"{settings.seed}–{settings.seed + len(images) - 1}"
        status = (
            f"{len(images)} image{'s' * (len(images) > 1)} in {time.perf_counter() - started:.1f} s · seed {seeds} · "
            f"{settings.scheduler}, {settings.steps} steps, CFG {settings.guidance:g}, {settings.width}×{settings.height} · adapters: {used}"
        )
        return gallery, status

    def compare(
        self, prompt: str, negative: str, seed: float, steps: float, guidance: float, width: float, height: float,
        scheduler: str, mode: str,
        a1: str | None, w1: float, a2: str | None, w2: float, a3: str | None, w3: float, a4: str | None, w4: float,
        left_name: str | None, left_weight: float, right_name: str | None, right_weight: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, str]:
        """The same seed and prompt twice: base vs the slots' adapters, or adapter A vs adapter B.

        Returns the two images (left, right) with captions, and a status line.
        """
        try:
            settings = RenderSettings(prompt, negative, seed, steps, guidance, width, height, 1, scheduler).checked()
            if mode == COMPARE_PAIR:
                if not left_name or not right_name:
                    raise DashError("pick adapter A and adapter B to compare them")
                left, right = self.picks([left_name, left_weight]), self.picks([right_name, right_weight])
            elif mode == COMPARE_BASE:
                left, right = [], self.picks([a1, w1, a2, w2, a3, w3, a4, w4])
                if not right:
                    raise DashError("pick at least one adapter in the adapter slots to compare it with the base model")
            else:
                raise DashError(f"unknown comparison {mode!r}: use one of {', '.join(COMPARE_MODES)}")
            first, second = self.engine.compare(settings, left, right, _progress_callback(progress, "comparing"))
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            return gr.skip(), _failure(error, "compare")

        def caption(picks: Picks) -> str:
            return " + ".join(f"{lora_tag_name(entry.name)} × {weight:g}" for entry, weight in picks) or "base model"

        status = f"Same prompt, seed {settings.seed}, {settings.scheduler}, {settings.steps} steps: **{caption(left)}** (left) vs **{caption(right)}** (right)."
        return [(first, caption(left)), (second, caption(right))], status

    # ----- inspection -----------------------------------------------------------------------------
    def inspect(self, name: str | None) -> tuple[str, Any, Any, dict[str, Any]]:
        """Metadata text, the directions heatmap, the per-layer table and the metadata as a dict."""
        empty_table = gr.update(value={"headers": TABLE_HEADERS, "data": []})
        if not name:
            return "Pick an adapter to see its settings and the directions it selected.", None, empty_table, {}
        try:
            entry = self.library.resolve(name)
            layers = read_directions(entry)
            heatmap = render_heatmap(layers) if layers else None
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            return _failure(error, "inspect this adapter"), None, empty_table, {}
        table = {"headers": TABLE_HEADERS, "data": directions_table(layers)}
        return metadata_markdown(entry, layers), heatmap, table, metadata_summary(entry)

    @staticmethod
    def new_seed() -> int:
        """A random seed for the dice button."""
        return random_seed()
