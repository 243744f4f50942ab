"""Machine-readable state of a run, for a UI that should not parse terminal output.

``logs/run_state.json`` (:data:`RUN_STATE`) is rewritten atomically by the main process at the start,
after every optimizer step, and when the run stops, finishes or fails::

    {"state": "running" | "stopped" | "finished" | "failed",
     "step": 12,                 # optimizer steps done
     "total_steps": 60,          # 0 while loading when only --num_train_epochs fixes it
     "phase": "lora" | "dash" | "loading",   # of the last step done (of the first one before it)
     "selected_at_step": 20 | null,           # when LoRA-Dash selected its directions
     "adapter": "/abs/output_dir" | null,     # the folder of the exported files, once finished
     "error": "one line" | null,              # why it failed
     "pid": 1234, "updated": 1700000000.0}    # the main process, time.time() of the write

A process killed without a chance to write (SIGKILL, a second SIGTERM) leaves ``running``: a UI can
check whether ``pid`` is still alive.

``logs/selection.json`` (:data:`SELECTION`) is written when the directions are selected: per component
(``unet``, ``text_encoder``...) and layer, the chosen singular-value positions and their change rates,
and how many layers chose each position.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..formats.safetensors_io import atomic_write_text

RUN_STATE = Path("logs") / "run_state.json"
SELECTION = Path("logs") / "selection.json"
STATES = ("running", "stopped", "finished", "failed")


def env_is_main_process() -> bool:
    """Whether this is the main process, before an accelerator exists (``RANK`` of torchrun launches)."""
    return os.environ.get("RANK", "0") == "0"


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (the type is named unless it is a user-facing DashError)."""
    from ..errors import DashError

    text = " ".join(str(error).split())
    if isinstance(error, DashError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class RunStatus:
    """Keeps the run's state and writes it to ``output_dir/logs/run_state.json`` on each update (main
    process only: set :attr:`is_main_process` once the accelerator knows)."""

    def __init__(self, output_dir: Path, total_steps: int = 0):
        self.path = Path(output_dir) / RUN_STATE
        self.is_main_process = env_is_main_process()
        self.fields: dict[str, Any] = {"state": "running", "step": 0, "total_steps": total_steps, "phase": "loading", "selected_at_step": None, "adapter": None, "error": None}

    def update(self, **changes: Any) -> None:
        """Change some fields and write the file (atomically; main process only)."""
        unknown = set(changes) - set(self.fields)
        if unknown:
            raise KeyError(f"not a run state field: {sorted(unknown)}")
        self.fields.update(changes)
        if self.is_main_process:
            atomic_write_text(self.path, json.dumps({**self.fields, "pid": os.getpid(), "updated": time.time()}))


def read_run_state(output_dir: Path) -> dict[str, Any] | None:
    """The run state of ``output_dir`` (None when there is none or it cannot be read)."""
    try:
        return json.loads((Path(output_dir) / RUN_STATE).read_text())
    except (OSError, ValueError):
        return None


def write_selection(output_dir: Path, selected_at_step: int, summaries: dict[str, dict[str, dict[str, list]]]) -> Path:
    """``logs/selection.json`` from :attr:`DashSchedule.summaries` (per component, per layer: indices and
    change rates), with per component the number of layers that chose each singular-value position."""
    counts = {}
    for prefix, layers in summaries.items():
        positions = [index for item in layers.values() for index in item["indices"]]
        counts[prefix] = [positions.count(i) for i in range(max(positions) + 1)] if positions else []
    document = {"selected_at_step": selected_at_step, "position_counts": counts, "layers": summaries}
    return atomic_write_text(Path(output_dir) / SELECTION, json.dumps(document, indent=1))
