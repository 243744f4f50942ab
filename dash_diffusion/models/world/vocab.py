"""The world's words: object classes, named colours, scenes, and the caption grammar.

Every caption reads ``a photo of a[n] [<colour>] <object> [<scene phrase>]``; the DreamBooth prompt
puts the rare token in place of the colour (``a photo of sks robot on the beach``). Because the
grammar is this small, :func:`vocabulary` can list every word any prompt may contain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scene import Scene

RGB = tuple[int, int, int]

RARE_TOKEN = "sks"
"""The DreamBooth identifier of the demo subject."""

CLASSES: tuple[str, ...] = ("robot", "ball", "cup", "car", "tree", "house", "duck", "rocket", "flower")
"""The object classes; ``"robot"`` is the class of the demo subject."""

COLOURS: dict[str, RGB] = {
    "red": (214, 38, 38),
    "orange": (247, 132, 22),
    "yellow": (247, 212, 32),
    "green": (56, 168, 52),
    "teal": (43, 181, 176),
    "blue": (38, 88, 216),
    "purple": (128, 58, 190),
    "pink": (246, 128, 188),
    "white": (244, 244, 240),
    "black": (38, 38, 44),
}
"""Named main colours of the objects, with clearly different hues or lightness."""

SCENES: tuple[str, ...] = ("beach", "room", "grass", "snow", "night", "city", "desert", "underwater")
"""The backgrounds an object can stand in."""

SCENE_PHRASES: dict[str, str] = {
    "beach": "on the beach",
    "room": "in a room",
    "grass": "on the grass",
    "snow": "in the snow",
    "night": "at night",
    "city": "in the city",
    "desert": "in the desert",
    "underwater": "under the sea",
}
"""The one phrase that names each scene in a caption."""

_PREFIX = "a photo of"


def _article(word: str) -> str:
    """``"an"`` before a vowel sound, else ``"a"``."""
    return "an" if word[0] in "aeiou" else "a"


def _check(kind: str, value: str | None, allowed) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(sorted(allowed))}")


def class_prompt(object: str, scene: str | None = None, colour: str | None = None) -> str:
    """``a photo of a [colour] object [scene phrase]``, leaving out the parts that are ``None``.

    >>> class_prompt("robot"), class_prompt("robot", "beach"), class_prompt("robot", colour="orange")
    ('a photo of a robot', 'a photo of a robot on the beach', 'a photo of an orange robot')
    """
    _check("object", object, CLASSES)
    _check("scene", scene, SCENES)
    _check("colour", colour, COLOURS)
    noun = object if colour is None else f"{colour} {object}"
    text = f"{_PREFIX} {_article(noun)} {noun}"
    return text if scene is None else f"{text} {SCENE_PHRASES[scene]}"


def caption(scene: Scene) -> str:
    """The caption of a rendered scene, e.g. ``a photo of a red ball on the beach``."""
    return class_prompt(scene.object, scene.scene, scene.colour)


def parse_caption(text: str) -> tuple[str, str | None, str | None]:
    """``(object, scene, colour)`` of a caption of this grammar (``None`` for a part it leaves out);
    the inverse of :func:`class_prompt`. ``ValueError`` for any other text.

    >>> parse_caption("a photo of an orange robot at night")
    ('robot', 'night', 'orange')
    """
    words = text.split()
    if words[:3] != _PREFIX.split() or len(words) < 5 or words[3] not in ("a", "an"):
        raise ValueError(f"{text!r} is not a caption of the world's grammar ('a photo of a [colour] object [scene]')")
    colour = words[4] if words[4] in COLOURS else None
    rest = words[5:] if colour else words[4:]
    phrases = {phrase: name for name, phrase in SCENE_PHRASES.items()}
    scene = phrases.get(" ".join(rest[1:])) if len(rest) > 1 else None
    if not rest or rest[0] not in CLASSES or (len(rest) > 1 and scene is None):
        raise ValueError(f"{text!r} is not a caption of the world's grammar ('a photo of a [colour] object [scene]')")
    return rest[0], scene, colour


def instance_prompt(object: str = "robot", scene: str | None = None, token: str = RARE_TOKEN) -> str:
    """The DreamBooth prompt of the subject: ``a photo of sks robot [scene phrase]``."""
    _check("object", object, CLASSES)
    _check("scene", scene, SCENES)
    text = f"{_PREFIX} {token} {object}"
    return text if scene is None else f"{text} {SCENE_PHRASES[scene]}"


def vocabulary() -> list[str]:
    """Every word any caption or prompt of this grammar can contain, plus the rare token, sorted."""
    words = set(_PREFIX.split()) | {"a", "an", RARE_TOKEN}
    words.update(CLASSES)
    words.update(COLOURS)
    for phrase in SCENE_PHRASES.values():
        words.update(phrase.split())
    return sorted(words)
