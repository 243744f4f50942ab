"""The subject under evaluation: its real photos (the references of DINO and CLIP-I), class and prompt kind.

Photos are read like training images (:func:`dash_diffusion.data.images.load_rgb`: EXIF orientation
applied, any mode converted to RGB, unreadable files skipped with a warning). The class comes from
``--class_name`` or the folder name (:func:`.prompts.infer_class`), the prompt kind from ``--kind`` or
the class (:func:`.prompts.default_kind`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from dash_diffusion.data.images import list_image_files, load_rgb
from dash_diffusion.errors import DashError

from .prompts import default_kind, infer_class


@dataclass
class Subject:
    """Real photos, class noun and prompt kind of one subject."""

    folder: Path
    class_name: str
    kind: str
    files: list[Path]
    images: list[Image.Image]


def load_subject(subject_dir: str | Path, class_name: str | None = None, kind: str | None = None) -> Subject:
    """Read ``subject_dir``'s photos and settle the class and prompt kind (one-line errors)."""
    folder = Path(subject_dir).expanduser()
    if not folder.is_dir():
        raise DashError(f"--subject_dir '{folder}' is not a folder: pass the folder of the subject's real photos, e.g. dreambooth/dog")
    usable = [(path, image) for path in list_image_files(folder) if (image := load_rgb(path)) is not None]
    if not usable:
        raise DashError(f"subject folder '{folder}' holds no readable images: pass the folder of the subject's real photos with --subject_dir")
    name = class_name or infer_class(folder)
    if not name:
        raise DashError(f"cannot tell the class of '{folder}' from its name: pass --class_name, e.g. --class_name dog")
    return Subject(folder, name, kind or default_kind(name), [p for p, _ in usable], [i for _, i in usable])
