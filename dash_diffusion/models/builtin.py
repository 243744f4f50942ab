"""The built-in models, by name: what ``--pretrained_model_name_or_path builtin:...`` and ``--base
builtin:...`` resolve to.

- ``builtin:tiny-sdxl``: random weights built from configs (:mod:`.tiny`), written once into the cache.
  For fast tests of the mechanics; its images are noise.
- ``builtin:mini-sdxl``: the small SDXL this project pretrained on its procedural world
  (:mod:`.mini`); its weights ship inside the package, so a learned subject can be seen and scored.
"""

from __future__ import annotations

from pathlib import Path

from dash_diffusion.errors import DashError

from .mini import MINI_MODEL_NAME, mini_model_folder
from .tiny import TINY_MODEL_NAME, tiny_model_folder

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS: tuple[str, ...] = (TINY_MODEL_NAME, MINI_MODEL_NAME)


def resolve_model_path(name_or_path: str, cache_dir: str | Path | None = None) -> str:
    """Turn a model name into something ``from_pretrained`` accepts.

    A built-in name becomes its local folder (the tiny model is written into ``cache_dir`` on first
    use); any other ``builtin:`` name is an error; everything else is returned unchanged.
    """
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    if name_or_path == TINY_MODEL_NAME:
        return str(tiny_model_folder(cache_dir))
    if name_or_path == MINI_MODEL_NAME:
        return str(mini_model_folder())
    raise DashError(f"unknown built-in model {name_or_path!r}; use one of: {', '.join(BUILTIN_MODELS)}")
