"""Checking an uploaded adapter before anything loads it, and storing the accepted ones.

Order of the checks: file name (``.safetensors`` only, pickle formats named as such), size limit,
the first bytes (a safetensors file starts with a little-endian u64 header length and a JSON object),
then the header against the base model (:func:`dash_diffusion.formats.lora_files.check_lora_file`). Nothing
is stored unless every check passes; stored files go to ``<adapters_dir>/uploads/`` under a cleaned
name, written to a temporary file first and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from dash_diffusion.errors import DashError
from dash_diffusion.formats.lora_files import LoraFileInfo, check_lora_file

from .file_names import safe_stem

DEFAULT_MAX_UPLOAD_MB = 512
#: A safetensors header is JSON describing the tensors; anything larger than this is not a LoRA header.
MAX_HEADER_BYTES = 100 * 1024 * 1024
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def clean_file_name(name: str) -> str:
    """A safe file name for an upload: letters, digits, ``._-`` only, ending in ``.safetensors``."""
    stem = Path(name.replace("\\", "/")).name
    stem = stem[: -len(".safetensors")] if stem.lower().endswith(".safetensors") else stem
    stem = safe_stem(stem, "adapter")
    return stem + ".safetensors"


def check_upload_bytes(path: Path, original_name: str, max_bytes: int) -> None:
    """The checks that need no model: name, size and a plausible safetensors header."""
    lowered = original_name.lower()
    if lowered.endswith(PICKLE_SUFFIXES):
        raise DashError(f"'{original_name}' is a pickle-based checkpoint: upload a .safetensors adapter instead (pickles can run code when loaded)")
    if not lowered.endswith(".safetensors"):
        raise DashError(f"'{original_name}' is not a .safetensors file: only safetensors adapters are accepted")
    size = path.stat().st_size
    if size > max_bytes:
        raise DashError(f"'{original_name}' is {size / 2**20:.0f} MB, over the upload limit of {max_bytes / 2**20:.0f} MB: pick a smaller adapter or raise --max_upload_mb")
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        raise DashError(f"'{original_name}' is too short to be a safetensors file: upload the complete file")
    (header_length,) = struct.unpack("<Q", head[:8])
    if header_length > min(MAX_HEADER_BYTES, size - 8) or head[8:9] != b"{":
        raise DashError(f"'{original_name}' does not start with a safetensors header: it is damaged or another format (pickles are never loaded)")


def check_upload(path: str | Path, original_name: str, pipe: Any, max_bytes: int) -> LoraFileInfo:
    """Every check, the base model's included; returns what the file holds or raises :class:`DashError`."""
    path = Path(path)
    check_upload_bytes(path, original_name, max_bytes)
    with tempfile.TemporaryDirectory(prefix="dash-app-upload-") as folder:
        # check_lora_file reads the header under a .safetensors name and reports it by that name
        named = Path(folder) / clean_file_name(original_name)
        try:
            os.symlink(path.resolve(), named)
        except OSError:  # no symlinks on this file system: a copy does the same
            shutil.copyfile(path, named)
        info = check_lora_file(named, pipe)
    return info


def _digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def store_upload(path: str | Path, original_name: str, uploads_dir: Path) -> Path:
    """Copy an accepted upload into ``uploads_dir``; the same content uploaded again reuses its file."""
    source = Path(path)
    uploads_dir.mkdir(parents=True, exist_ok=True)
    wanted = clean_file_name(original_name)
    digest = _digest(source)
    stem, suffix = wanted[: -len(".safetensors")], ".safetensors"
    for index in range(1000):
        target = uploads_dir / (wanted if index == 0 else f"{stem}-{index}{suffix}")
        if target.is_symlink():
            continue
        if target.exists():
            if target.is_file() and _digest(target) == digest:
                return target
            continue
        fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=uploads_dir)
        os.close(fd)
        try:
            shutil.copyfile(source, staging)
            os.replace(staging, target)
        finally:
            Path(staging).unlink(missing_ok=True)
        return target
    raise DashError(f"too many uploads named '{wanted}': delete some from {uploads_dir}")
