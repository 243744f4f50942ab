"""The mini-DreamBench prompt set: DreamBooth's 25 prompts retold in the world's grammar.

DreamBooth's prompts are recontextualisations (``a sks backpack on the beach``), property changes
(``a red sks backpack``) and, for live subjects, accessories. The world can say a scene and a colour, so
each subject gets :data:`PROMPTS_PER_SUBJECT` = 13 prompts:

* 7 **scene** prompts, every world scene but :data:`~.photos.TRAINING_SCENE` (one training photo
  stands there): ``a photo of sks ball on the beach``;
* 3 **colour** changes, to the first three of :data:`COLOUR_CHANGES` that differ from the subject's own
  colour: ``a photo of a red sks ball``;
* 3 **combinations** of those colours with three scenes (:data:`COMBO_SCENES`):
  ``a photo of a red sks ball in the snow``.

A prompt's *class* form drops the identifier (``a photo of a red ball in the snow``, the world's caption
grammar): the base model's row is generated from it, and it names what the judges must see. Prompt
fidelity checks the object always, the scene when the prompt names one and the colour when it names one.
"""

from __future__ import annotations

from dataclasses import dataclass

from dash_diffusion.models.world import RARE_TOKEN, SCENE_PHRASES, SCENES, Subject, class_prompt, instance_prompt

from .photos import TRAINING_SCENE, subject_named

KINDS: tuple[str, ...] = ("scene", "colour", "combo")
COLOUR_CHANGES: tuple[str, ...] = ("red", "blue", "yellow", "black")
"""Colours a property prompt asks for, in order of preference (the subject's own colour is skipped)."""
COMBO_SCENES: tuple[str, ...] = ("snow", "beach", "city")
"""The scenes of the three combination prompts, paired with the three colour changes in order."""
PROMPTS_PER_SUBJECT = len(SCENES) - 1 + 2 * len(COMBO_SCENES)


@dataclass(frozen=True)
class WorldPrompt:
    """One prompt of a subject: its kind, what it asks for, and its two texts."""

    kind: str
    object: str
    scene: str | None
    colour: str | None
    text: str
    class_text: str

    @property
    def asks(self) -> dict[str, str]:
        """The attributes the judges must find: ``object``, plus ``scene``/``colour`` when named."""
        wanted = {"object": self.object}
        if self.scene is not None:
            wanted["scene"] = self.scene
        if self.colour is not None:
            wanted["colour"] = self.colour
        return wanted


def identified_prompt(object: str, scene: str | None, colour: str | None, token: str = RARE_TOKEN) -> str:
    """The prompt with the identifier: ``a photo of sks ball`` plus ``a <colour>`` before the
    identifier and the scene phrase after the noun when given (``a photo of an orange sks ball at night``)."""
    if colour is None:
        return instance_prompt(object, scene, token)
    article = "an" if colour[0] in "aeiou" else "a"
    text = f"a photo of {article} {colour} {token} {object}"
    return text if scene is None else f"{text} {SCENE_PHRASES[scene]}"


def _prompt(kind: str, subject: Subject, scene: str | None, colour: str | None, token: str) -> WorldPrompt:
    return WorldPrompt(kind, subject.object, scene, colour, identified_prompt(subject.object, scene, colour, token), class_prompt(subject.object, scene, colour))


def subject_prompts(name: str, token: str = RARE_TOKEN) -> list[WorldPrompt]:
    """The 13 prompts of subject ``name``, in the order scenes, colours, combinations."""
    subject = subject_named(name)
    colours = [colour for colour in COLOUR_CHANGES if colour != subject.colour][: len(COMBO_SCENES)]
    prompts = [_prompt("scene", subject, scene, None, token) for scene in SCENES if scene != TRAINING_SCENE]
    prompts += [_prompt("colour", subject, None, colour, token) for colour in colours]
    prompts += [_prompt("combo", subject, scene, colour, token) for scene, colour in zip(COMBO_SCENES, colours)]
    return prompts


def pick_prompts(prompts: list[WorldPrompt], count: int | None) -> list[int]:
    """Indices of ``count`` prompts spread over the list (every kind represented when ``count`` >= 3),
    or all of them for ``None``."""
    if count is None or count >= len(prompts):
        return list(range(len(prompts)))
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    by_kind = [[i for i, p in enumerate(prompts) if p.kind == kind] for kind in KINDS]
    chosen: list[int] = []
    while len(chosen) < count:
        for group in by_kind:
            remaining = [i for i in group if i not in chosen]
            if remaining and len(chosen) < count:
                chosen.append(remaining[0])
    return sorted(chosen)
