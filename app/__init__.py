"""A Gradio app for SDXL with LoRA and LoRA-Dash adapters.

Generate with several adapters at once, compare an adapter with the base model (or two adapters with
each other) at the same seed, and inspect the task-specific directions a LoRA-Dash run selected.

Start it with ``python -m app --base builtin:tiny-sdxl --adapters_dir outputs`` (``make app``), or build
it in-process with :func:`build_app` (what the tests do).
"""

from __future__ import annotations

import os

# Set before gradio is imported anywhere in the process: the app never phones home.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from .ui import build_app  # noqa: E402

__all__ = ["build_app"]
