"""Reading training images robustly.

Users drop whatever their phone, camera or browser produced into a folder: JPEGs with an EXIF
rotation, transparent PNGs and GIFs, CMYK scans, 16-bit TIFFs, and now and then a broken download or
a text file with a ``.jpg`` name. :func:`load_rgb` turns every readable one into an upright 8-bit RGB
image and turns every unreadable one into ``None`` plus a warning that names the file, so a single
bad file never stops a training run. :func:`list_image_files` finds the candidate files in a folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from dash_diffusion.errors import DataError

logger = logging.getLogger(__name__)

#: Extensions (lower case, with the dot) of the files treated as images; matched case-insensitively.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)

#: Files that commonly sit beside training images and are skipped without a warning.
SIDECAR_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".caption", ".json", ".jsonl", ".csv", ".md", ".toml", ".yaml", ".yml",
     ".npz", ".npy", ".pt", ".safetensors", ".ini", ".db", ".log"}
)

# Modes carrying an alpha channel: composited on white.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Modes whose ``transparency`` info (a colour key or palette alpha) becomes real alpha.
_KEYED_TRANSPARENCY_MODES = frozenset({"P", "L", "RGB", "1"})
# Integer and float modes with more than 8 bits per sample: rescaled by their value range.
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_WHITE = (255, 255, 255, 255)
_MAX_LISTED = 10


def load_rgb(path: str | os.PathLike[str]) -> Image.Image | None:
    """Read ``path`` as an upright 8-bit RGB image, or return ``None`` for a file that cannot be used.

    The file is decoded completely here (so truncation is detected now, not halfway through
    training), its EXIF orientation is applied, and its mode is converted with :func:`to_rgb`.
    Empty, truncated, corrupt and non-image files log one warning naming the file and the reason and
    give ``None``; this function never raises for a bad file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        logger.warning("skipping image '%s': cannot read it (%s)", path, error.strerror or error)
        return None
    if size == 0:
        logger.warning("skipping image '%s': the file is empty (0 bytes)", path)
        return None
    try:
        with Image.open(path) as opened:
            opened.load()
            image = _upright(opened, path)
            return to_rgb(image)
    except Image.UnidentifiedImageError:
        logger.warning("skipping image '%s': not an image file (or a format Pillow cannot read)", path)
    except Image.DecompressionBombError as error:
        logger.warning("skipping image '%s': too large to decode safely (%s)", path, error)
    except OSError as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason:
            reason = f"the file is truncated or incomplete ({reason})"
        logger.warning("skipping image '%s': cannot decode it: %s", path, reason)
    except Exception as error:  # noqa: BLE001 - decoders raise many types for corrupt data
        logger.warning("skipping image '%s': corrupt image data (%s: %s)", path, type(error).__name__, error)
    return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit ``RGB``.

    Transparency (an alpha channel, or a palette/colour-key ``transparency`` entry) is composited
    on white, so a fully transparent pixel becomes (255, 255, 255). Modes with more than 8 bits per
    sample (``I;16*``, ``I``, ``F``) are stretched linearly from their actual minimum..maximum to
    0..255 rather than clipped; a constant image becomes black if its value is <= 0, else white.
    Every other mode (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``...) uses Pillow's
    own conversion.
    """
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in _KEYED_TRANSPARENCY_MODES and "transparency" in image.info:
        return _composite_on_white(image.convert("RGBA"))
    if mode in _ALPHA_MODES:
        return _composite_on_white(image.convert("RGBA"))
    if mode in _HIGH_DEPTH_MODES:
        return _stretch_to_8bit(image).convert("RGB")
    return image.convert("RGB")


def split_image_files(folder: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """Return ``(images, others)`` for the files directly inside ``folder``, each sorted by name.

    ``images`` have an extension in :data:`IMAGE_EXTENSIONS` (any case). ``others`` are the
    remaining visible files that are not known sidecar files (captions, metadata, caches), i.e. the
    files a user probably meant as images (``.heic``, ``.avif``, no extension...). Hidden files and
    sub-folders are ignored. Raises :class:`DataError` when ``folder`` is not an existing folder.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder '{folder}' does not exist: check the path to the training images")
    if not folder.is_dir():
        raise DataError(f"'{folder}' is a file, not a folder: pass the folder that holds the images")
    images: list[Path] = []
    others: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        suffix = entry.suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            images.append(entry)
        elif suffix not in SIDECAR_EXTENSIONS:
            others.append(entry)
    return images, others


def list_image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Return the image files directly inside ``folder``, sorted by file name.

    Hidden files, sub-folders and sidecar files (``.txt`` captions...) are skipped silently; files
    with any other unknown extension are skipped with one warning that lists them. Raises
    :class:`DataError` when ``folder`` is not an existing folder.
    """
    images, others = split_image_files(folder)
    if others:
        logger.warning(
            "ignoring %d file(s) in '%s' that are not supported images (%s); supported: %s",
            len(others), folder, describe_files(others), ", ".join(sorted(IMAGE_EXTENSIONS)),
        )
    return images


def describe_files(paths: list[Path], limit: int = _MAX_LISTED) -> str:
    """Name at most ``limit`` files on one line, e.g. ``"a.jpg, b.heic and 3 more"``."""
    names = [p.name for p in paths[:limit]]
    text = ", ".join(names)
    if len(paths) > limit:
        text += f" and {len(paths) - limit} more"
    return text


def _upright(image: Image.Image, path: Path) -> Image.Image:
    """Apply the EXIF orientation tag; a malformed EXIF block only costs the rotation."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - malformed EXIF comes in many shapes
        logger.warning("ignoring the EXIF orientation of '%s': it is malformed (%s)", path, error)
        return image.copy()


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, _WHITE)
    return Image.alpha_composite(background, rgba).convert("RGB")


def _stretch_to_8bit(image: Image.Image) -> Image.Image:
    """Map a high-bit-depth single-channel image linearly from its value range to 0..255 (``L``)."""
    values = np.asarray(image).astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return Image.new("L", image.size, 0)
    low = float(values[finite].min())
    high = float(values[finite].max())
    values = np.where(finite, values, low)
    if high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.full(values.shape, 255.0 if low > 0 else 0.0)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))
