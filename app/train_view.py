"""How a run looks on the Train tab: the status lines, the progress bar, the directions summary, the
loss curve (redrawn only when it changed) and the updates of the tab's progress components.

Formatting of a :class:`~app.training_runs.RunStatus` only: nothing here starts or stops a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from .loss_plot import render_loss_curve
from .training_runs import RunStatus

PHASE_LABELS = {"lora": "LoRA warm-up", "dash": "LoRA-Dash", "plain": "LoRA"}
STATE_WORDS = {
    "none": "no run yet", "starting": "starting (loading the model)", "running": "running", "stopping": "stopping (saving a checkpoint)",
    "stopped": "stopped", "finished": "finished", "failed": "failed",
}


def selection_markdown(selection: object, selected_at: int | None) -> str:
    """A few lines about the directions chosen at step t (``logs/selection.json``)."""
    if not isinstance(selection, dict):
        return f"Directions selected at step {selected_at}." if selected_at is not None else ""
    lines = [f"**Directions selected at step {selection.get('selected_at_step', selected_at)}**"]
    layers = selection.get("layers")
    if isinstance(layers, dict):
        for component, members in layers.items():
            if isinstance(members, dict):
                lines.append(f"- {component}: {len(members)} layers")
    counts = selection.get("position_counts")
    if isinstance(counts, dict):
        for component, values in counts.items():
            if isinstance(values, list) and values:
                top = sorted(range(len(values)), key=lambda i: -values[i])[:5]
                lines.append(f"- {component}: most chosen singular-value positions " + ", ".join(f"{i} ({values[i]} layers)" for i in top))
    return "\n".join(lines)


def status_markdown(status: RunStatus, message: str = "") -> str:
    """The status lines above the progress bar."""
    if status.run is None:
        text = "No training run yet: add photos, pick a preset and press **Start training**."
        return f"{message}\n\n{text}" if message else text
    state = "running (loading the model)" if status.state == "running" and status.phase == "loading" else STATE_WORDS.get(status.state, status.state)
    head = f"**Run `{status.run}`** · {status.method} · **{state}**"
    facts = []
    if status.total:
        facts.append(f"step {status.step} / {status.total} ({100 * status.step / status.total:.0f} %)")
    if status.loss is not None:
        facts.append(f"loss {status.loss:.4f}")
    if status.lr is not None:
        facts.append(f"lr {status.lr:.2e}")
    if status.phase and status.phase != "loading":
        facts.append(f"phase {PHASE_LABELS.get(status.phase, status.phase) if status.method == 'LoRA-Dash' else 'LoRA'}")
    if status.eta is not None:
        facts.append(f"ETA {status.to_json()['eta_text']} ({status.seconds_per_step:.3g} s/step)")
    lines = [head + (" — " + " · ".join(facts) if facts else "")]
    if status.state == "failed" and status.error:
        lines.append(f"**Error:** {status.error}")
    if status.state == "stopped":
        lines.append("Stopped with a checkpoint: **Resume** continues where it left off.")
    if status.state == "finished" and status.adapter:
        lines.append(f"Adapter written to `{status.adapter}`; it is in the adapter lists. Trigger prompt: `{status.instance_prompt}`")
    if status.command:
        lines.append(f"Repeat it from a terminal: `{status.command}`")
    if message:
        lines.insert(0, message)
    return "\n\n".join(lines)


PROGRESS_COLOUR = "#6d28d9"


def progress_html(status: RunStatus) -> str:
    """A progress bar of the run's steps (a plain div, drawn the same by every browser)."""
    total = status.total or 0
    value = min(status.step, total) if total else 0
    percent = 100.0 * value / total if total else 0.0
    return (
        f'<div id="train-progress-bar" role="progressbar" aria-valuenow="{value}" aria-valuemin="0" aria-valuemax="{total}" '
        f'style="width:100%;height:14px;border-radius:7px;background:#e2e8f0;overflow:hidden">'
        f'<div style="width:{percent:.1f}%;height:100%;background:{PROGRESS_COLOUR}"></div></div>'
    )


class LossCurve:
    """The run's loss curve as an image, redrawn only when a step, the switch or the run changed."""

    def __init__(self) -> None:
        self._last: tuple[tuple, Image.Image | None] = ((), None)  # the last curve drawn, by what it shows

    def __call__(self, status: RunStatus) -> Image.Image | None:
        """The curve of ``status`` (None when there is no run)."""
        if status.run is None:
            return None
        key = (status.run, len(status.history), status.history[-1]["step"] if status.history else 0, status.selected_at_step, status.total, status.method)
        if self._last[0] != key:
            self._last = (key, render_loss_curve(status.history, status.selected_at_step, status.total, status.method != "LoRA"))
        return self._last[1]


def progress_updates(status: RunStatus, loss_image: Any, message: str = "", poll: bool = True) -> list[Any]:
    """Updates of the progress components for ``status``, in the order of
    :attr:`TrainTab.progress_outputs <app.train_tab.TrainTab.progress_outputs>`: status, progress bar,
    loss curve (``loss_image``), directions, validation images, Stop, Resume, Use in Generate, Compare,
    the polling timer (on while ``poll`` and the run is active) and the finished marker."""
    finished = status.state == "finished" and bool(status.adapter)
    resumable = status.state == "stopped" or (status.state == "failed" and status.folder is not None and any(Path(status.folder).glob("checkpoint-*")))
    return [
        status_markdown(status, message),
        progress_html(status),
        loss_image,
        selection_markdown(status.selection, status.selected_at_step) if status.method == "LoRA-Dash" else "",
        [(path, Path(path).stem.replace("step-", "step ").replace("-", " #")) for path in reversed(status.validation_images[-12:])],
        gr.update(interactive=status.state in ("starting", "running")),
        gr.update(visible=resumable),
        gr.update(visible=finished),
        gr.update(visible=finished),
        gr.Timer(active=poll and status.active),
        f"{status.run}:finished" if finished else "",
    ]
