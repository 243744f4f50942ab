"""Many rendered scenes at once, for pretraining, evaluation or a quick look."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .render import render
from .sampling import sample_scene
from .scene import Scene


def render_dataset(count: int, seed: int = 0, split: str = "train", size: int = 128) -> list[tuple[Image.Image, Scene]]:
    """``count`` random scenes of ``split`` from ``numpy.random.default_rng(seed)``, each with its image."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, split) for _ in range(count)]
    return [(render(scene, size), scene) for scene in scenes]
