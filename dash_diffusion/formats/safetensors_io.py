"""Reading and atomically writing safetensors files, with one-line errors for bad files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import DashError

#: Header key under which every file this project writes keeps its LoRA-Dash metadata (JSON).
DASH_METADATA_KEY = "lora_dash"
#: Linux reports the process umask here (kernel 4.7+); elsewhere it is read with os.umask.
PROC_STATUS = Path("/proc/self/status")


def current_umask() -> int:
    """The process umask, read from ``/proc/self/status`` where present, otherwise by setting and at
    once restoring it (``os.umask`` has no read-only form)."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Create ``path`` by ``write(temporary_path)`` into a temporary file in the same folder, fsync and
    ``os.replace``, so a crash never leaves a half-written file under the final name. The file gets mode
    ``0o666 & ~umask``, as a file made by ``open()`` would (``mkstemp`` makes 0600 files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` (moved to the CPU) to ``path`` with :func:`atomic_write`."""
    ready = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(ready, tmp, metadata=metadata))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _open_error(path: Path, error: Exception) -> DashError:
    return DashError(f"cannot read '{path}' as safetensors ({error}): pass an intact .safetensors adapter file")


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors (on CPU) and the header metadata of a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise DashError(f"adapter file '{path}' does not exist: check the path")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise _open_error(path, error) from error
    return tensors, metadata


def read_header(path: str | Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and header metadata, without reading the tensor data."""
    path = Path(path)
    if not path.is_file():
        raise DashError(f"adapter file '{path}' does not exist: check the path")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise _open_error(path, error) from error
    return shapes, metadata


def dash_metadata(header: dict[str, str]) -> dict[str, Any] | None:
    """The parsed LoRA-Dash metadata of a header, or None when the file has none."""
    raw = header.get(DASH_METADATA_KEY)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
