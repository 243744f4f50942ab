"""The adapters folder: what it offers, and turning a name picked in the UI into a path safely.

Names are POSIX paths relative to the adapters folder: ``demo`` (a trainer output folder) or
``styles/ink.safetensors`` (a plain LoRA file). Every name that comes back from the browser is checked
again by :meth:`AdapterLibrary.resolve`: no absolute paths, no ``..``, and the resolved path (symlinks
followed) must stay inside the folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from dash_diffusion.errors import DashError
from dash_diffusion.formats.export import DIFFUSERS_WEIGHT_NAME, NATIVE_WEIGHT_NAME
from dash_diffusion.formats.safetensors_io import dash_metadata, read_header

#: Folder levels below the adapters folder that are searched.
MAX_DEPTH = 4
#: At most this many adapters are listed (a guard against pointing the app at a huge tree).
MAX_ENTRIES = 500
#: Accepted uploads are stored here, inside the adapters folder.
UPLOADS_SUBDIR = "uploads"
#: Folders never searched: hidden ones and the trainer's non-adapter outputs.
_SKIPPED_DIRS = re.compile(r"^(\..*|__pycache__|checkpoint-\d+|validation|logs|class_images)$")
_LORA_KEY = re.compile(r"lora_(A|B|up|down)\.weight$")


@dataclass(frozen=True)
class AdapterEntry:
    """One adapter the folder offers."""

    name: str  # relative POSIX path: the value the UI sends back
    kind: str  # "LoRA-Dash run", "LoRA folder", "LoRA file" or "upload"
    path: Path  # the folder or file, resolved
    metadata: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """What the dropdown shows."""
        meta = self.metadata or {}
        if meta.get("rank") is not None and meta.get("num_directions") is not None:
            return f"{self.name}  ·  {self.kind} (r={meta['rank']}, s={meta['num_directions']})"
        return f"{self.name}  ·  {self.kind}"

    @property
    def trigger_prompt(self) -> str | None:
        """The instance prompt the adapter was trained with, when its metadata records one."""
        prompt = (self.metadata or {}).get("instance_prompt")
        return prompt if isinstance(prompt, str) and prompt.strip() else None

    @property
    def lora_file(self) -> Path:
        """The file handed to the pipeline."""
        return self.path / DIFFUSERS_WEIGHT_NAME if self.path.is_dir() else self.path

    @property
    def native_file(self) -> Path | None:
        """The native ``dash_adapter.safetensors`` (with the selected directions), when there is one."""
        folder = self.path if self.path.is_dir() else self.path.parent
        candidate = folder / NATIVE_WEIGHT_NAME
        return candidate if candidate.is_file() else None


def _header_metadata(path: Path) -> tuple[list[str], dict[str, Any] | None] | None:
    """Tensor names and LoRA-Dash metadata of a safetensors file, or None if it cannot be read."""
    try:
        shapes, header = read_header(path)
    except DashError:
        return None
    return list(shapes), dash_metadata(header)


class AdapterLibrary:
    """Lists and resolves the adapters inside one folder (created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.real_root = self.root.resolve()

    @property
    def uploads_dir(self) -> Path:
        """Where accepted uploads are stored (created on demand)."""
        return self.root / UPLOADS_SUBDIR

    def inside(self, path: Path) -> bool:
        """Whether ``path``, with every symlink followed, lies inside the adapters folder."""
        try:
            return path.resolve().is_relative_to(self.real_root)
        except (OSError, RuntimeError):  # a symlink loop or an unreadable path
            return False

    def scan(self) -> list[AdapterEntry]:
        """Trainer output folders and LoRA ``.safetensors`` files, sorted by name (uploads last)."""
        entries: list[AdapterEntry] = []
        for folder, subdirs, files in os.walk(self.root, followlinks=False):
            here = Path(folder)
            depth = len(here.relative_to(self.root).parts)
            subdirs[:] = sorted(d for d in subdirs if not _SKIPPED_DIRS.match(d)) if depth < MAX_DEPTH else []
            if DIFFUSERS_WEIGHT_NAME in files:
                subdirs[:] = []  # a trainer folder: its own three files make one entry
                entry = self._entry(here, folder_entry=True)
                if entry is not None:
                    entries.append(entry)
                continue
            for file_name in sorted(files):
                if file_name.endswith(".safetensors") and not file_name.startswith("."):
                    entry = self._entry(here / file_name, folder_entry=False)
                    if entry is not None:
                        entries.append(entry)
            if len(entries) >= MAX_ENTRIES:
                break
        entries = entries[:MAX_ENTRIES]
        return sorted(entries, key=lambda e: (e.name.startswith(UPLOADS_SUBDIR + "/"), e.name.lower()))

    def _entry(self, path: Path, folder_entry: bool) -> AdapterEntry | None:
        weights = path / DIFFUSERS_WEIGHT_NAME if folder_entry else path
        if not (self.inside(path) and self.inside(weights)):
            return None  # a symlink leading out of the folder is never offered
        read = _header_metadata(weights)
        if read is None:
            return None
        keys, metadata = read
        if not any(_LORA_KEY.search(key) for key in keys) or any(key.endswith(".dash_U") for key in keys):
            return None  # model weights, a native LoRA-Dash file (its folder is the entry) or anything else
        name = path.relative_to(self.root).as_posix()
        if folder_entry:
            kind = "LoRA-Dash run" if metadata and metadata.get("format") == "lora-dash" else "LoRA folder"
        else:
            kind = "upload" if name.startswith(UPLOADS_SUBDIR + "/") else "LoRA file"
        return AdapterEntry(name=name, kind=kind, path=path.resolve(), metadata=metadata)

    def resolve(self, name: object) -> AdapterEntry:
        """The entry for a name sent by the UI; :class:`DashError` for anything outside the folder."""
        if not isinstance(name, str) or not name.strip():
            raise DashError("no adapter picked: choose one from the list")
        refused = DashError(f"adapter name {name!r} is not inside the adapters folder: pick one from the list")
        if "\x00" in name or len(name) > 1024:
            raise refused
        posix = PurePosixPath(name.replace("\\", "/"))
        if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
            raise refused
        candidate = self.root / posix
        if not self.inside(candidate):
            raise refused
        if not candidate.exists():
            raise DashError(f"adapter '{name}' is no longer in the adapters folder: press refresh")
        is_folder = candidate.is_dir()
        if is_folder and not (candidate / DIFFUSERS_WEIGHT_NAME).is_file():
            raise DashError(f"folder '{name}' has no {DIFFUSERS_WEIGHT_NAME}: pick a trainer output folder or a .safetensors file")
        if not is_folder and candidate.suffix != ".safetensors":
            raise DashError(f"'{name}' is not a .safetensors file: only safetensors adapters are loaded (never pickles)")
        entry = self._entry(candidate, folder_entry=is_folder)
        if entry is None:
            raise DashError(f"'{name}' is not a LoRA file this app can use (unreadable, outside the folder or no LoRA tensors)")
        return entry
