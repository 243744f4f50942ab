"""Random scenes for the training and held-out splits, and the demo subject for evaluation.

The demo subject is the toy robot of ``samples/robot``: a teal robot with a round body, a boxy head, an
antenna with an orange ball and a yellow star on its chest. The training split never contains a teal
robot with a star emblem (teal robots with other emblems and star emblems on other robots are fine),
so the class is known to the model but the subject is new, as in DreamBooth. Nor does it contain the
mini-DreamBench's other held-out instances (:data:`~.subjects.SUBJECTS`: a (class, colour, variant)
each): such a draw gets another shape variant.
"""

from __future__ import annotations

import numpy as np

from .heldout import HELDOUT, HELDOUT_ORDER
from .scene import ARM_POSES, BACKDROPS, BODY_SHAPES, EMBLEMS, HEAD_SHAPES, VARIANTS, Scene
from .subjects import SUBJECTS, other_variant
from .vocab import CLASSES, COLOURS, SCENES

SPLITS: tuple[str, ...] = ("train", "heldout")
SUBJECT_COLOUR = "teal"
SUBJECT_EMBLEM = "star"
_COLOUR_NAMES = tuple(COLOURS)
_SUBJECT_POSES = ("down", "down", "wave")


def is_subject(scene: Scene) -> bool:
    """Whether ``scene`` shows the demo subject's instance (a teal robot with a star emblem)."""
    return scene.object == "robot" and scene.colour == SUBJECT_COLOUR and scene.emblem == SUBJECT_EMBLEM


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 3)


def _placement(rng: np.random.Generator) -> dict:
    """Size, position, viewpoint, lighting and background variant, the same for every class."""
    size = _uniform(rng, 0.38, 0.68)
    margin = size / 2 + 0.03
    return {
        "size": size,
        "x": _uniform(rng, margin, 1.0 - margin),
        "ground": _uniform(rng, 0.78, 0.95),
        "turn": _uniform(rng, -1.0, 1.0),
        "tilt": _uniform(rng, -10.0, 10.0),
        "brightness": _uniform(rng, 0.85, 1.12),
        "warmth": _uniform(rng, -1.0, 1.0),
        "backdrop": int(rng.integers(BACKDROPS)),
        "variant": int(rng.integers(VARIANTS)),
    }


def _robot_parts(rng: np.random.Generator, colour: str) -> dict:
    """Random robot parts; a teal robot never gets the star (that is the demo subject)."""
    emblems = EMBLEMS if colour != SUBJECT_COLOUR else tuple(e for e in EMBLEMS if e != SUBJECT_EMBLEM)
    others = tuple(name for name in _COLOUR_NAMES if name != colour)
    return {
        "body": _pick(rng, BODY_SHAPES),
        "head": _pick(rng, HEAD_SHAPES),
        "emblem": _pick(rng, emblems),
        "emblem_colour": _pick(rng, others),
        "antenna": bool(rng.integers(2)),
        "antenna_tip": _pick(rng, others),
        "arms": _pick(rng, ARM_POSES),
    }


def sample_scene(rng: np.random.Generator, split: str = "train") -> Scene:
    """A random scene: uniform class, colour and scene, then uniform drawing parameters.

    ``"train"`` never yields a :data:`HELDOUT` combination nor a held-out instance (:data:`SUBJECTS`);
    ``"heldout"`` yields only :data:`HELDOUT` combinations (uniformly).
    """
    if split == "train":
        while True:
            combo = (_pick(rng, CLASSES), _pick(rng, _COLOUR_NAMES), _pick(rng, SCENES))
            if combo not in HELDOUT:
                break
    elif split == "heldout":
        combo = _pick(rng, HELDOUT_ORDER)
    else:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    obj, colour, scene = combo
    params = _placement(rng)
    if obj == "robot":
        params.update(_robot_parts(rng, colour))
    elif split == "train":
        for subject in SUBJECTS.values():
            if (subject.object, subject.colour) == (obj, colour) and not subject.parts:
                params["variant"] = other_variant(rng, params["variant"], VARIANTS, subject.variant)
    return Scene(obj, colour, scene, **params)


def subject_scene(scene: str, rng: np.random.Generator) -> Scene:
    """The demo subject (teal robot, round body, boxy head, orange antenna ball, yellow star) standing
    in ``scene`` with a random size, position, viewpoint and lighting, for evaluation renders."""
    params = _placement(rng)
    params["variant"] = 0
    return Scene(
        "robot",
        SUBJECT_COLOUR,
        scene,
        body="round",
        head="boxy",
        emblem=SUBJECT_EMBLEM,
        emblem_colour="yellow",
        antenna=True,
        antenna_tip="orange",
        arms=_pick(rng, _SUBJECT_POSES),
        **params,
    )
