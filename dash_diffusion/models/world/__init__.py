"""A procedural world drawn with PIL, to pretrain ``builtin:mini-sdxl`` on and to score DreamBooth.

Nine object classes (a toy robot among them) in ten colours stand in eight scenes; every picture is
described by a :class:`Scene` and captioned by a tiny grammar (``a photo of a red ball on the
beach``). The training split never shows the demo subject (a teal robot with a star emblem, as in
``samples/robot``), the other held-out instances of :data:`SUBJECTS`, nor the :data:`HELDOUT`
(class, colour, scene) combinations.

>>> import numpy as np
>>> scene = sample_scene(np.random.default_rng(0))
>>> image = render(scene, 128)
>>> text = caption(scene)
"""

from .dataset import class_scenes, render_class_images, render_dataset
from .heldout import HELDOUT
from .render import render
from .sampling import SPLITS, SUBJECT_COLOUR, SUBJECT_EMBLEM, is_subject, sample_scene, subject_scene
from .subjects import SUBJECTS, Subject, held_out_instance
from .scene import ARM_POSES, BODY_SHAPES, EMBLEMS, HEAD_SHAPES, Scene
from .vocab import CLASSES, COLOURS, RARE_TOKEN, SCENE_PHRASES, SCENES, caption, class_prompt, instance_prompt, vocabulary

__all__ = [
    "ARM_POSES",
    "BODY_SHAPES",
    "CLASSES",
    "COLOURS",
    "EMBLEMS",
    "HEAD_SHAPES",
    "HELDOUT",
    "RARE_TOKEN",
    "SCENES",
    "SCENE_PHRASES",
    "SPLITS",
    "SUBJECTS",
    "SUBJECT_COLOUR",
    "SUBJECT_EMBLEM",
    "Scene",
    "Subject",
    "caption",
    "class_scenes",
    "class_prompt",
    "instance_prompt",
    "held_out_instance",
    "is_subject",
    "render",
    "render_class_images",
    "render_dataset",
    "sample_scene",
    "subject_scene",
    "vocabulary",
]
