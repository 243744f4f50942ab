"""The held-out subject *instances*: objects the pretraining split never shows, to be learned by DreamBooth.

An instance is what :func:`~dash_diffusion.models.world_judges.examples.identity_key` calls one: for most
classes a (class, colour, shape variant) triple, for the robot its colour and parts. The training split
(:func:`~.sampling.sample_scene`) never draws any of them, so the model knows every class, colour and
variant but has never seen these particular objects, as in DreamBooth, where the subject is new and its
class is not. ``robot`` is the demo subject of ``samples/robot``; the other six are the mini-DreamBench's
further subjects, one per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Scene


@dataclass(frozen=True)
class Subject:
    """One held-out instance: ``object`` and ``colour`` (what a class prompt can say), ``variant`` (the
    class's shape variant) and, for a robot, its parts (``Scene`` field -> value)."""

    name: str
    object: str
    colour: str
    variant: int = 0
    parts: tuple[tuple[str, object], ...] = ()

    def matches(self, scene: Scene) -> bool:
        """Whether ``scene`` draws this instance (placement, pose, light and background aside)."""
        if scene.object != self.object or scene.colour != self.colour:
            return False
        if self.parts:
            return all(getattr(scene, field) == value for field, value in self.parts)
        return scene.variant == self.variant

    def scene(self, where: str, placement: dict) -> Scene:
        """This instance standing in scene ``where`` with the given placement fields."""
        fields = {**placement, **dict(self.parts)}
        if not self.parts:
            fields["variant"] = self.variant
        return Scene(self.object, self.colour, where, **fields)


ROBOT_PARTS: tuple[tuple[str, object], ...] = (
    ("body", "round"), ("head", "boxy"), ("emblem", "star"), ("emblem_colour", "yellow"), ("antenna", True), ("antenna_tip", "orange"),
)

SUBJECTS: dict[str, Subject] = {
    subject.name: subject
    for subject in (
        Subject("robot", "robot", "teal", parts=ROBOT_PARTS),
        Subject("dotted_ball", "ball", "blue", variant=2),
        Subject("saucer_cup", "cup", "yellow", variant=2),
        Subject("green_van", "car", "green", variant=1),
        Subject("orange_pine", "tree", "orange", variant=1),
        Subject("purple_rocket", "rocket", "purple", variant=2),
        Subject("white_tulip", "flower", "white", variant=2),
    )
}
"""Every held-out instance by name; ``SUBJECTS["robot"]`` is the demo subject of ``samples/robot``."""


def held_out_instance(scene: Scene) -> Subject | None:
    """The held-out subject ``scene`` draws, if any. For the robot only colour and emblem decide (a
    teal robot never wears the star in training, whatever its other parts)."""
    for subject in SUBJECTS.values():
        if subject.parts:
            if scene.object == "robot" and scene.colour == subject.colour and scene.emblem == dict(subject.parts)["emblem"]:
                return subject
        elif subject.matches(scene):
            return subject
    return None


def other_variant(rng: np.random.Generator, scene_variant: int, variants: int, excluded: int) -> int:
    """A shape variant other than ``excluded`` (``scene_variant`` itself when it is not excluded)."""
    if scene_variant != excluded:
        return scene_variant
    return (excluded + 1 + int(rng.integers(variants - 1))) % variants
