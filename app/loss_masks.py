"""Loss masks uploaded with a Train tab run (the trainer's ``--instance_mask_dir``).

A mask is a greyscale image named like its photo (``dog_01.png`` for ``dog_01.jpg``; white = subject,
black = ignored, grey = partial; see :mod:`dash_diffusion.data.masks`). Masks are matched to photos by
the file-name stem the app stores the photo under (the same cleaning as the photos' names), checked
before anything is stored, and kept beside the datasets, never inside one (the trainer reads every image
of a dataset folder as a photo)::

    <data_dir>/masks/<dataset>/<photo stem>.png

Checks, each a one-line :class:`DashError`: every mask matches a photo, every usable photo has a mask,
each mask decodes, has its photo's size (after the photo's EXIF rotation, as the trainer reads it) and
is not black everywhere. A new upload replaces a dataset's masks as a whole (written to a staging folder,
then renamed into place).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from dash_diffusion.data.images import load_rgb
from dash_diffusion.errors import DashError
from dash_diffusion.formats.safetensors_io import current_umask

from .file_names import safe_stem


def stored_stem(name: str) -> str:
    """The stem the app stores a file named ``name`` under (photos and masks alike)."""
    return safe_stem(Path(name).stem, "photo")


def _listing(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def read_masks(mask_paths: Sequence[Path], photos: dict[str, Path]) -> dict[str, Image.Image]:
    """Check uploaded masks (matched to photos by file name) against ``photos`` (stored stem -> photo
    file) and return stem -> greyscale mask; :class:`DashError` naming the first problem and what to do."""
    masks: dict[str, Image.Image] = {}
    for path in mask_paths:
        name = path.name
        stem = stored_stem(name)
        if stem not in photos:
            raise DashError(f"loss mask '{name}' matches no photo (photos: {_listing(sorted(photos))}): name each mask like its photo, e.g. {next(iter(sorted(photos)), 'photo')}.png")
        if stem in masks:
            raise DashError(f"two loss masks for photo '{photos[stem].name}': upload one mask per photo")
        try:
            with Image.open(path) as opened:
                mask = opened.convert("L")
        except OSError:
            raise DashError(f"loss mask '{name}' cannot be read as an image: save it as a PNG") from None
        photo = load_rgb(photos[stem])
        if photo is None:
            raise DashError(f"photo '{photos[stem].name}' of loss mask '{name}' cannot be read: upload the photo again")
        if mask.size != photo.size:
            raise DashError(f"loss mask '{name}' is {mask.width}x{mask.height} but its photo is {photo.width}x{photo.height}: draw the mask at the photo's size")
        if mask.getextrema()[1] == 0:
            raise DashError(f"loss mask '{name}' is black everywhere, so its photo would teach nothing: paint the subject white")
        masks[stem] = mask
    missing = sorted(photos[stem].name for stem in photos if stem not in masks)
    if missing:
        raise DashError(f"no loss mask for {_listing(missing)}: give every photo a mask, or none at all")
    return masks


def store_masks(masks: dict[str, Image.Image], target: Path) -> None:
    """Write ``masks`` as ``target/<stem>.png``, replacing whatever ``target`` held, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".masks-", dir=target.parent))
    retired = target.parent / f".{target.name}.old"
    try:
        for stem, mask in masks.items():
            mask.save(staging / f"{stem}.png")
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp made it private
        shutil.rmtree(retired, ignore_errors=True)
        if target.exists():
            os.rename(target, retired)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
