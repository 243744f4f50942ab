"""The description of one picture of the world: which object, colour and scene, and how it is drawn."""

from __future__ import annotations

from dataclasses import dataclass

from .vocab import CLASSES, COLOURS, SCENES

BODY_SHAPES: tuple[str, ...] = ("round", "square", "capsule")
HEAD_SHAPES: tuple[str, ...] = ("boxy", "round", "dome")
EMBLEMS: tuple[str, ...] = ("circle", "heart", "bolt", "square", "star")
ARM_POSES: tuple[str, ...] = ("down", "wave", "up", "out")
BACKDROPS = 4
"""How many fixed variants each scene's background has (``Scene.backdrop`` is in ``range(BACKDROPS)``)."""
VARIANTS = 3
"""How many shape variants each class has (``Scene.variant`` is in ``range(VARIANTS)``)."""


@dataclass(frozen=True)
class Scene:
    """Everything :func:`~dash_diffusion.models.world.render` needs to draw one image.

    ``object``, ``colour`` and ``scene`` are what the caption says; ``colour`` is the object's main
    (body) colour. ``size`` is the side of the object's square bounding box as a fraction of the image
    height, ``x`` its centre and ``ground`` the line its base stands on (fractions of width/height).
    ``turn`` in [-1, 1] turns the object towards the viewer's left/right (front details slide and
    squash), ``tilt`` leans it by that many degrees. ``brightness`` (about 1) and ``warmth`` (in
    [-1, 1], cold to warm) light the whole picture. ``backdrop`` picks one of the scene's background
    variants and ``variant`` one of the class's shape variants. The remaining fields are the parts of a
    robot (ignored for other classes): body and head shape, chest emblem and its colour, whether it
    has an antenna and the colour of the antenna's ball, and the pose of the arms.
    """

    object: str
    colour: str
    scene: str
    size: float = 0.55
    x: float = 0.5
    ground: float = 0.86
    turn: float = 0.0
    tilt: float = 0.0
    brightness: float = 1.0
    warmth: float = 0.0
    backdrop: int = 0
    variant: int = 0
    body: str = "round"
    head: str = "boxy"
    emblem: str = "star"
    emblem_colour: str = "yellow"
    antenna: bool = True
    antenna_tip: str = "orange"
    arms: str = "down"

    def __post_init__(self) -> None:
        for kind, value, allowed in (
            ("object", self.object, CLASSES),
            ("colour", self.colour, COLOURS),
            ("scene", self.scene, SCENES),
            ("body", self.body, BODY_SHAPES),
            ("head", self.head, HEAD_SHAPES),
            ("emblem", self.emblem, EMBLEMS),
            ("emblem_colour", self.emblem_colour, COLOURS),
            ("antenna_tip", self.antenna_tip, COLOURS),
            ("arms", self.arms, ARM_POSES),
        ):
            if value not in allowed:
                raise ValueError(f"Scene.{kind} {value!r} is unknown; choose one of {', '.join(allowed)}")
        if not 0.05 <= self.size <= 1.0:
            raise ValueError(f"Scene.size {self.size} must be in [0.05, 1]")
        if not -1.0 <= self.turn <= 1.0:
            raise ValueError(f"Scene.turn {self.turn} must be in [-1, 1]")
        if self.backdrop not in range(BACKDROPS) or self.variant not in range(VARIANTS):
            raise ValueError(f"Scene.backdrop must be in range({BACKDROPS}), Scene.variant in range({VARIANTS})")
