"""Stopping a run on request, between optimizer steps, with a resumable checkpoint.

Two ways to ask: a file named ``STOP`` (:data:`STOP_FILE`) in ``output_dir`` (the main process looks for
it), or SIGTERM / SIGINT (Ctrl-C) to a trainer process. A signal only sets a flag; the first one is
acted on after the optimizer step in progress, and the previous handler is put back at once, so a
second Ctrl-C interrupts as before (exit 130, the last checkpoint intact) and a second SIGTERM ends the
process. In multi-process runs the processes agree on the decision (a sum over processes), so they all
stop after the same step. The trainer then saves ``checkpoint-N`` (unless it just did), removes the
``STOP`` file, records state ``stopped`` in ``logs/run_state.json`` and raises :class:`TrainingStopped`;
the CLI prints its message and exits with status 0. ``--resume_from_checkpoint latest`` continues the
run and ends with the adapter an uninterrupted run writes.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

STOP_FILE = "STOP"
SIGNALS = ("SIGTERM", "SIGINT")


class TrainingStopped(Exception):
    """Raised by ``train()`` when a run stopped on request; ``str()`` says how to resume."""

    def __init__(self, step: int, checkpoint: Path | None, reason: str):
        self.step, self.checkpoint, self.reason = step, checkpoint, reason
        super().__init__(f"stopped after step {step}; resume with --resume_from_checkpoint latest")


class StopRequest:
    """Whether someone asked the run to stop: a ``STOP`` file in ``output_dir`` or a signal.

    Use as a context manager around training: it installs the signal handlers on entry (from the main
    thread only; a signal that is ignored, e.g. SIGINT of a background job, stays ignored) and restores
    the previous ones on exit.
    """

    def __init__(self, output_dir: Path):
        self.stop_file = Path(output_dir) / STOP_FILE
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for name in SIGNALS:
                number = getattr(signal, name, None)
                if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
                    self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            if signal.getsignal(number) == self._on_signal:
                signal.signal(number, handler)
        self._previous.clear()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        """First signal: remember it and put the previous handler back (a second one acts as before)."""
        self.signal_name = signal.Signals(number).name
        signal.signal(number, self._previous.get(number, signal.SIG_DFL))
        message = f"{self.signal_name} received: stopping after the current optimizer step with a checkpoint (send it again to quit at once)\n"
        os.write(2, message.encode())  # not print(): a handler interrupting a write to sys.stderr must not write to it

    def local_reason(self, is_main_process: bool) -> str | None:
        """Why this process wants to stop: a signal it got, or (main process) the ``STOP`` file; else None."""
        if self.signal_name:
            return self.signal_name
        if is_main_process and self.stop_file.exists():
            return f"{STOP_FILE} file"
        return None

    def check(self, accelerator: Any) -> str | None:
        """The reason to stop now, the same decision on every process (a collective when there are
        several: every process must call it at the same point); None to go on."""
        reason = self.local_reason(accelerator.is_main_process)
        if accelerator.num_processes == 1:
            return reason
        import torch

        votes = accelerator.reduce(torch.tensor([float(reason is not None)], device=accelerator.device), reduction="sum")
        return (reason or "another process was asked to stop") if votes.item() > 0 else None

    def clear_stop_file(self) -> bool:
        """Remove the ``STOP`` file; True when there was one."""
        try:
            self.stop_file.unlink()
        except FileNotFoundError:
            return False
        return True
