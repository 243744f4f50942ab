"""How far the subject-fidelity score can tell the subject from look-alikes: its scale, per subject.

For each subject the score (mean instance-embedding cosine to its reference photos) of pictures
rendered in the world's room with the poses of its five training photos, showing:

* ``subject``: the subject itself: the ceiling a perfect generator reaches;
* ``look-alike``: the same class and colour with another shape (the other variants; for the robot,
  another chest emblem): what a generator gets for the right class and colour but not the instance;
* ``other colour``: the same instance recoloured red or black: what a generator gets for the right
  shape in the wrong colour.

A method's score between *look-alike* and *subject* says it drew the instance; a ceiling close to the
look-alike score says the judges hardly tell that subject from its class-mates, and differences between
methods on it mean little.
"""

from __future__ import annotations

from dataclasses import replace

from dash_diffusion.models.world import SUBJECTS, Scene, render
from dash_diffusion.models.world.scene import EMBLEMS, VARIANTS
from dash_diffusion.models.world_judges import Judges, instance_similarity

from .photos import SIZE, reference_photos, training_photos

KINDS: tuple[str, ...] = ("subject", "look-alike", "other colour")
RECOLOURS: tuple[str, ...] = ("red", "black")


def look_alikes(subject_name: str, scene: Scene) -> list[Scene]:
    """``scene`` with the other shape variants (for the robot: every other chest emblem)."""
    subject = SUBJECTS[subject_name]
    if subject.parts:
        return [replace(scene, emblem=emblem) for emblem in EMBLEMS if emblem != scene.emblem]
    return [replace(scene, variant=variant) for variant in range(VARIANTS) if variant != subject.variant]


def recoloured(subject_name: str, scene: Scene) -> list[Scene]:
    colour = SUBJECTS[subject_name].colour
    return [replace(scene, colour=other) for other in RECOLOURS if other != colour]


def calibrate(judges: Judges, subject_name: str) -> dict[str, float]:
    """The subject-fidelity score of each of :data:`KINDS` for ``subject_name`` (see the module docstring)."""
    references = [photo.image for photo in reference_photos(subject_name)]
    poses = [photo.scene for photo in training_photos(subject_name)]
    kinds = {
        "subject": poses,
        "look-alike": [s for pose in poses for s in look_alikes(subject_name, pose)],
        "other colour": [s for pose in poses for s in recoloured(subject_name, pose)],
    }
    return {kind: instance_similarity(judges, [render(scene, SIZE) for scene in scenes], references) for kind, scenes in kinds.items()}
