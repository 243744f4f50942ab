"""Which drawer draws each class, and how each class reacts to a turned viewpoint.

``squash`` is how much the whole object narrows at a full turn, ``faces`` whether it has a front
(drawn facing right, mirrored for a turn to the left), and ``footprint`` the width of its shadow as a
fraction of its box, and ``tilt`` how much of ``Scene.tilt`` it leans by (a house hardly leans).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .outdoors import draw_flower, draw_house, draw_tree
from .pen import Pen
from .robot import draw_robot
from .scene import Scene
from .toys import draw_ball, draw_cup, draw_duck
from .vehicles import draw_car, draw_rocket
from .vocab import CLASSES


@dataclass(frozen=True)
class Drawer:
    """How to draw one class."""

    draw: Callable[[Pen, Scene], None]
    squash: float
    faces: bool
    footprint: float
    tilt: float = 1.0


DRAWERS: dict[str, Drawer] = {
    "robot": Drawer(draw_robot, 0.0, False, 0.5),
    "ball": Drawer(draw_ball, 0.0, False, 0.7),
    "cup": Drawer(draw_cup, 0.12, True, 0.72),
    "car": Drawer(draw_car, 0.4, True, 0.95, 0.5),
    "tree": Drawer(draw_tree, 0.1, False, 0.6, 0.5),
    "house": Drawer(draw_house, 0.25, False, 0.95, 0.3),
    "duck": Drawer(draw_duck, 0.3, True, 0.75),
    "rocket": Drawer(draw_rocket, 0.0, False, 0.6),
    "flower": Drawer(draw_flower, 0.2, False, 0.45),
}
assert set(DRAWERS) == set(CLASSES), "every class needs a drawer"
