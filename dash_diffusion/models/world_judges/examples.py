"""The judges' training pictures: which scenes are drawn, how often, and their labels.

Pictures come in pairs, two views of one object *instance* (:func:`identity_key`). The first view
is drawn from one of these sources (probabilities in :data:`SOURCES`):

* ``train`` / ``heldout``: :func:`~..world.sample_scene` of that split (what the test renders look like);
* ``subject``: :func:`~..world.subject_scene` in a random scene, a third of them drawn large;
* ``robot``: a robot in a random scene, normal or large, whose parts are random or those of the
  subject with one part changed (a *near miss*: another colour, emblem, emblem colour, ...), so that
  the embedding learns what makes the subject itself;
* ``plain_robot``: a large robot (the subject, a near miss or random) on a plain background
  (:mod:`.plain`), like ``samples/robot``;
* ``plain_object``: any other class on a plain background.

The second view (:func:`second_view`) shows the same instance with a new placement, lighting and
pose, in a random scene or on a plain background, so the embedding learns to ignore all of those.

Labels are indices into :data:`~.labels.LABELS`; a label that does not apply is :data:`IGNORE` (scene
on a plain background, robot parts of a non-robot, shape variant of a robot, antenna tip of a robot
without antenna).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from ..world import BODY_SHAPES, CLASSES, EMBLEMS, HEAD_SHAPES, SCENES, Scene, render, sample_scene, subject_scene
from ..world.scene import ARM_POSES, BACKDROPS, VARIANTS
from ..world.vocab import COLOURS
from .labels import LABELS, ROBOT_HEADS
from .plain import KINDS, render_plain

IGNORE = -100
"""The label of a head that does not apply to an example (``torch.nn.functional.cross_entropy``'s default)."""

SOURCES: dict[str, float] = {
    "train": 0.42,
    "heldout": 0.22,
    "subject": 0.09,
    "robot": 0.1,
    "plain_robot": 0.1,
    "plain_object": 0.07,
}
"""How often each source is drawn (the values sum to 1)."""

_SOURCE_NAMES = tuple(SOURCES)
_SOURCE_P = np.array(list(SOURCES.values())) / sum(SOURCES.values())
_COLOURS = tuple(COLOURS)
_SUBJECT_PARTS = {"colour": "teal", "body": "round", "head": "boxy", "emblem": "star", "emblem_colour": "yellow", "antenna": True, "antenna_tip": "orange"}
_NEAR_MISS = ("colour", "colour", "emblem", "emblem", "emblem_colour", "body", "head", "antenna", "antenna_tip")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 3)


def object_frequencies() -> dict[str, float]:
    """How often each class is drawn, from :data:`SOURCES` (the splits are about uniform over classes,
    ``plain_object`` is uniform over the classes but the robot, the other sources are robots)."""
    share = {name: SOURCES[name] / sum(SOURCES.values()) for name in SOURCES}
    uniform = share["train"] + share["heldout"]
    frequencies = {name: uniform / len(CLASSES) + share["plain_object"] / (len(CLASSES) - 1) for name in CLASSES}
    frequencies["robot"] = uniform / len(CLASSES) + share["subject"] + share["robot"] + share["plain_robot"]
    return frequencies


def placement(rng: np.random.Generator, large: bool) -> dict:
    """Size, position, viewpoint and lighting: the world's ranges, or a large object (55-100% of the
    height, standing low, possibly cut at the edges) as in the sample photos."""
    if large:
        size = _u(rng, 0.55, 1.0)
        ground = _u(rng, min(size + 0.01, 1.0), max(min(size + 0.01, 1.0), 1.03))
        margin = min(0.5, size * 0.4)
    else:
        size = _u(rng, 0.38, 0.68)
        ground = _u(rng, 0.78, 0.95)
        margin = size / 2 + 0.03
    return {
        "size": size,
        "x": _u(rng, margin, 1.0 - margin),
        "ground": ground,
        "turn": _u(rng, -1.0, 1.0),
        "tilt": _u(rng, -13.0, 13.0) if large else _u(rng, -10.0, 10.0),
        "brightness": _u(rng, 0.85, 1.12),
        "warmth": _u(rng, -1.0, 1.0),
        "backdrop": int(rng.integers(BACKDROPS)),
        "variant": int(rng.integers(VARIANTS)),
    }


def robot_parts(rng: np.random.Generator) -> dict:
    """Robot parts and colour: the subject's (15%), a near miss of it (45%) or random (40%)."""
    roll = rng.random()
    if roll < 0.4:
        parts = {
            "colour": _pick(rng, _COLOURS),
            "body": _pick(rng, BODY_SHAPES),
            "head": _pick(rng, HEAD_SHAPES),
            "emblem": _pick(rng, EMBLEMS),
            "emblem_colour": _pick(rng, _COLOURS),
            "antenna": bool(rng.integers(2)),
            "antenna_tip": _pick(rng, _COLOURS),
        }
    else:
        parts = dict(_SUBJECT_PARTS)
        if roll < 0.85:
            field = _pick(rng, _NEAR_MISS)
            if field == "antenna":
                parts["antenna"] = False
            else:
                options = {"colour": _COLOURS, "emblem_colour": _COLOURS, "antenna_tip": _COLOURS, "emblem": EMBLEMS, "body": BODY_SHAPES, "head": HEAD_SHAPES}[field]
                parts[field] = _pick(rng, tuple(v for v in options if v != parts[field]))
    parts["arms"] = _pick(rng, ARM_POSES)
    return parts


def labels_of(scene: Scene, plain: bool) -> dict[str, int]:
    """The label index of every head for ``scene`` (:data:`IGNORE` where it does not apply)."""
    values = {
        "object": scene.object,
        "scene": None if plain else scene.scene,
        "colour": scene.colour,
        "variant": None if scene.object == "robot" else LABELS["variant"][scene.variant],
        "body": scene.body,
        "head": scene.head,
        "emblem": scene.emblem,
        "emblem_colour": scene.emblem_colour,
        "antenna": LABELS["antenna"][int(scene.antenna)],
        "antenna_tip": scene.antenna_tip if scene.antenna else None,
    }
    if scene.object != "robot":
        values.update({name: None for name in ROBOT_HEADS})
    return {name: IGNORE if value is None else LABELS[name].index(value) for name, value in values.items()}


def identity_key(scene: Scene) -> tuple:
    """What makes an object *instance*: class, colour and shape variant, and for a robot its parts
    (body, head, emblem and its colour, antenna and its ball) instead of the variant. Pose, place,
    lighting and background are not part of it."""
    if scene.object != "robot":
        return (scene.object, scene.colour, scene.variant)
    return ("robot", scene.colour, scene.body, scene.head, scene.emblem, scene.emblem_colour, scene.antenna and scene.antenna_tip)


def first_view(rng: np.random.Generator) -> tuple[Scene, bool, str]:
    """A scene from a random source of :data:`SOURCES`, whether it goes on a plain background, and the source."""
    source = _SOURCE_NAMES[int(rng.choice(len(_SOURCE_NAMES), p=_SOURCE_P))]
    plain = source.startswith("plain")
    if source in ("train", "heldout"):
        scene = sample_scene(rng, source)
    elif source == "subject":
        scene = subject_scene(_pick(rng, SCENES), rng)
        if rng.random() < 1 / 3:
            scene = replace(scene, **{k: v for k, v in placement(rng, True).items() if k != "variant"})
    elif source == "plain_object":
        scene = Scene(_pick(rng, CLASSES[1:]), _pick(rng, _COLOURS), "room", **placement(rng, rng.random() < 0.5))
    else:
        large = plain or rng.random() < 0.4
        scene = Scene("robot", scene="room" if plain else _pick(rng, SCENES), **placement(rng, large), **robot_parts(rng))
    return scene, plain, source


def second_view(scene: Scene, rng: np.random.Generator) -> tuple[Scene, bool]:
    """The same instance (:func:`identity_key`) elsewhere: new placement, lighting and arm pose, in a
    random scene (or, one time in four, on a plain background)."""
    plain = rng.random() < 0.25
    params = placement(rng, plain or rng.random() < 0.3)
    params["variant"] = scene.variant
    return replace(scene, scene="room" if plain else _pick(rng, SCENES), arms=_pick(rng, ARM_POSES), **params), plain


def _draw(scene: Scene, plain: bool, rng: np.random.Generator, size: int) -> Image.Image:
    return render_plain(scene, _pick(rng, KINDS), rng, size) if plain else render(scene, size)


def draw_pair(rng: np.random.Generator, size: int = 128) -> list[tuple[Image.Image, dict[str, int], tuple]]:
    """Two clean ``size`` px pictures of one instance (:func:`first_view`, :func:`second_view`), each
    with its labels and the instance's :func:`identity_key`."""
    scene, plain, _ = first_view(rng)
    other, other_plain = second_view(scene, rng)
    key = identity_key(scene)
    return [(_draw(s, p, rng, size), labels_of(s, p), key) for s, p in ((scene, plain), (other, other_plain))]
