"""The label lists the judges predict, one list per head, in the order of the heads' outputs.

``object``, ``scene`` and ``colour`` are what :meth:`~.judge.Judges.classify` reports. The robot-part
heads (``body`` .. ``antenna_tip``) and ``variant`` exist only to shape the instance embedding: the
part heads make it tell one robot from another (a teal robot with a star from a teal robot with a
heart), ``variant`` one shape of a class from another (the green van from the other green cars).
``antenna`` is ``"none"``/``"antenna"``; ``antenna_tip`` is only learnt on robots that have an antenna,
``variant`` only on the classes other than the robot (a robot's shape is its parts).
"""

from __future__ import annotations

from ..world import BODY_SHAPES, CLASSES, COLOURS, EMBLEMS, HEAD_SHAPES, SCENES
from ..world.scene import VARIANTS

ANTENNA: tuple[str, ...] = ("none", "antenna")
VARIANT_NAMES: tuple[str, ...] = tuple(f"v{index}" for index in range(VARIANTS))
"""A shape variant's label is its index in the world (``Scene.variant``), as ``v0``, ``v1``, ...."""

CLASSIFY_HEADS: tuple[str, ...] = ("object", "scene", "colour")
"""The heads whose answers :meth:`~.judge.Judges.classify` returns."""

IDENTITY_HEADS: tuple[str, ...] = ("object", "colour", "variant", "body", "head", "emblem", "emblem_colour", "antenna", "antenna_tip")
"""The heads fed by the instance embedding (all but ``scene``)."""

ROBOT_HEADS: tuple[str, ...] = ("body", "head", "emblem", "emblem_colour", "antenna", "antenna_tip")
"""The heads that only get a loss on robot images."""

LABELS: dict[str, tuple[str, ...]] = {
    "object": tuple(CLASSES),
    "scene": tuple(SCENES),
    "colour": tuple(COLOURS),
    "variant": VARIANT_NAMES,
    "body": tuple(BODY_SHAPES),
    "head": tuple(HEAD_SHAPES),
    "emblem": tuple(EMBLEMS),
    "emblem_colour": tuple(COLOURS),
    "antenna": ANTENNA,
    "antenna_tip": tuple(COLOURS),
}
"""Every head's class names; ``len(LABELS[head])`` is the head's output size."""


def head_sizes(labels: dict[str, tuple[str, ...]] | None = None) -> dict[str, int]:
    """The number of outputs of each head (of :data:`LABELS` unless ``labels`` is given)."""
    return {name: len(values) for name, values in (labels or LABELS).items()}
