"""Many rendered scenes at once, for pretraining, evaluation or a quick look."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .render import render
from .sampling import sample_scene
from .scene import Scene
from .vocab import CLASSES


def render_dataset(count: int, seed: int = 0, split: str = "train", size: int = 128) -> list[tuple[Image.Image, Scene]]:
    """``count`` random scenes of ``split`` from ``numpy.random.default_rng(seed)``, each with its image."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, split) for _ in range(count)]
    return [(render(scene, size), scene) for scene in scenes]


def class_scenes(obj: str, count: int, seed: int = 0) -> list[Scene]:
    """The first ``count`` training-split scenes of class ``obj`` (any colour, any scene) drawn from
    ``numpy.random.default_rng(seed)``. The training split never holds a held-out subject, so these
    never show the subject being taught."""
    if obj not in CLASSES:
        raise ValueError(f"unknown object class {obj!r}; choose one of {', '.join(CLASSES)}")
    rng = np.random.default_rng(seed)
    scenes: list[Scene] = []
    while len(scenes) < count:
        scene = sample_scene(rng)
        if scene.object == obj:
            scenes.append(scene)
    return scenes


def render_class_images(obj: str, count: int, seed: int = 0, size: int = 128) -> list[Image.Image]:
    """Pictures of :func:`class_scenes`: real class images for DreamBooth's prior preservation."""
    return [render(scene, size) for scene in class_scenes(obj, count, seed)]
