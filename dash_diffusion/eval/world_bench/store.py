"""The results folder of a study: one JSON per finished (subject, method, seed), and what makes them comparable.

A result is written atomically to ``<out>/runs/<subject>/<method>/seed<k>/result.json`` once its run is
complete, so a folder holds only whole results and an interrupted study resumes by skipping them. Each
result carries its study's **protocol** (everything that decides its numbers: model and judges
fingerprints, steps, learning rate, sampling, prompts) and the fingerprint of its subject's photos; a rerun
whose protocol or photos differ refuses to mix its numbers with the stored ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dash_diffusion.errors import DashError
from dash_diffusion.formats.safetensors_io import atomic_write_text

from .methods import run_folder

FORMAT = "mini-dreambench-run-v1"
RESULT_NAME = "result.json"


def digest_files(paths: Iterable[Path], root: Path | None = None) -> str:
    """SHA-256 over the (relative name, content) of every file, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(str(path.relative_to(root) if root else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def digest_folder(folder: Path) -> str:
    """:func:`digest_files` of every file under ``folder``."""
    return digest_files((p for p in folder.rglob("*") if p.is_file()), folder)


def protocol_digest(protocol: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:16]


def result_path(root: Path, subject: str, method: str, seed: int) -> Path:
    return run_folder(root, subject, method, seed) / RESULT_NAME


def write_result(root: Path, record: dict[str, Any]) -> Path:
    """Store one finished run's record (atomically)."""
    path = result_path(root, record["subject"], record["method"], record["seed"])
    return atomic_write_text(path, json.dumps({"format": FORMAT, **record}, indent=1) + "\n")


def read_result(path: Path) -> dict[str, Any]:
    """A stored record; a file that is not one raises a one-line :class:`DashError`."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DashError(f"cannot read the result '{path}' ({type(error).__name__}): delete it and run again to redo that run") from error
    if record.get("format") != FORMAT:
        raise DashError(f"'{path}' is not a mini-DreamBench result (format {record.get('format')!r}): delete it or pass another --out")
    return record


def check_comparable(record: dict[str, Any], path: Path, protocol: dict[str, Any], data_digest: str) -> None:
    """Refuse a stored result made under another protocol or from other photos of its subject."""
    stored = record.get("protocol", {})
    if stored != protocol:
        differing = sorted(key for key in set(stored) | set(protocol) if stored.get(key) != protocol.get(key))
        raise DashError(f"'{path}' was made with another protocol (differs in: {', '.join(differing)}): pass a new --out, or delete that folder's runs to redo them")
    if record.get("data_sha256") != data_digest:
        raise DashError(f"'{path}' was made from other photos of {record['subject']} (the world's renderer changed): pass a new --out")


def find_result(root: Path, subject: str, method: str, seed: int) -> dict[str, Any] | None:
    """The stored record of a run, or ``None`` when it has not finished."""
    path = result_path(root, subject, method, seed)
    return read_result(path) if path.is_file() else None
