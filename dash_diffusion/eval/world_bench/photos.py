"""The "real photos" of a held-out subject: deterministic renders of the procedural world.

DreamBooth trains on 4-6 casual photos of a subject and scores fidelity against real photos of it. Here a
subject is one of :data:`~dash_diffusion.models.world.SUBJECTS`, an instance the pretraining split never
drew, and its photos are renders:

* **training photos** (:func:`training_photos`, :data:`TRAINING_LAYOUT`): five views, the object large
  (55-100 % of the height, as in ``samples/robot``), turned from the viewer's left to the right
  (:data:`TRAINING_TURNS`), with random tilt, position and lighting; four on plain backgrounds (flat
  colour, gradient, bare two-tone room: :func:`~dash_diffusion.models.world_judges.plain.render_plain`)
  and one standing in the world's ``room`` scene (:data:`TRAINING_SCENE`, which the prompt set therefore
  never asks for);
* **reference photos** (:func:`reference_photos`): eight further views drawn the same way from another
  random stream, never shown in training, so subject fidelity rewards the instance, not memorised
  training pictures.

A photo of subject ``k`` and purpose ``p`` comes from ``numpy.random.default_rng([crc32(name), p])``: the
same pixels on every machine and run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dash_diffusion.formats.safetensors_io import atomic_write
from dash_diffusion.models.world import SUBJECTS, Scene, Subject, render
from dash_diffusion.models.world_judges.examples import placement
from dash_diffusion.models.world_judges.plain import render_plain

from .errors import unknown_subject

SIZE = 128
"""Side of every photo (``builtin:mini-sdxl``'s resolution)."""
TRAINING_SCENE = "room"
"""The one world scene a training photo stands in."""
TRAINING_LAYOUT: tuple[str, ...] = ("flat", "gradient", "room", f"scene:{TRAINING_SCENE}", "gradient")
"""Background of each training photo: a plain kind, or ``scene:<name>`` for a world scene."""
TRAINING_TURNS: tuple[float, ...] = (-0.8, -0.35, 0.0, 0.45, 0.85)
"""Viewpoint of each training photo (``Scene.turn``: viewer's left -1 .. right +1)."""
REFERENCE_LAYOUT: tuple[str, ...] = ("flat", "gradient", "room", f"scene:{TRAINING_SCENE}") * 2
"""Backgrounds of the eight reference photos (their turns are random)."""
ROBOT_POSES: tuple[str, ...] = ("down", "wave")
_TRAINING, _REFERENCE = 0, 1


@dataclass(frozen=True)
class Photo:
    """One render: the scene it shows, its background and the picture."""

    scene: Scene
    background: str
    image: Image.Image


def _rng(subject: Subject, purpose: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(subject.name.encode()), purpose])


def _scene(subject: Subject, background: str, turn: float | None, rng: np.random.Generator) -> Scene:
    """The subject placed for one photo: large on a plain background, world-sized in a world scene."""
    in_scene = background.startswith("scene:")
    fields = {k: v for k, v in placement(rng, large=not in_scene).items() if k != "variant"}
    if turn is not None:
        fields["turn"] = turn
    if subject.object == "robot":
        fields["arms"] = ROBOT_POSES[int(rng.integers(len(ROBOT_POSES)))]
    where = background.split(":", 1)[1] if in_scene else TRAINING_SCENE
    return subject.scene(where, fields)


def _draw(subject: Subject, layout: tuple[str, ...], turns: tuple[float | None, ...], purpose: int) -> list[Photo]:
    rng = _rng(subject, purpose)
    photos = []
    for background, turn in zip(layout, turns):
        scene = _scene(subject, background, turn, rng)
        image = render(scene, SIZE) if background.startswith("scene:") else render_plain(scene, background, rng, SIZE)
        photos.append(Photo(scene, background, image))
    return photos


def subject_named(name: str) -> Subject:
    """The held-out subject ``name`` (a one-line :class:`DashError` listing the names otherwise)."""
    if name not in SUBJECTS:
        raise unknown_subject(name)
    return SUBJECTS[name]


def training_photos(name: str) -> list[Photo]:
    """The five training photos of subject ``name`` (see the module docstring)."""
    return _draw(subject_named(name), TRAINING_LAYOUT, TRAINING_TURNS, _TRAINING)


def reference_photos(name: str) -> list[Photo]:
    """The eight reference photos of subject ``name``: other views, never trained on."""
    return _draw(subject_named(name), REFERENCE_LAYOUT, (None,) * len(REFERENCE_LAYOUT), _REFERENCE)


def write_photos(photos: list[Photo], folder: Path) -> list[Path]:
    """Save ``photos`` as ``folder/00.png``, ``01.png``, ... (each written atomically); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, photo in enumerate(photos):
        path = folder / f"{index:02d}.png"
        atomic_write(path, lambda tmp, image=photo.image: image.save(tmp, format="PNG"))
        paths.append(path)
    return paths
