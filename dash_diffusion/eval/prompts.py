"""The DreamBooth benchmark prompts and subject classes (Ruiz et al., CVPR 2023), as data.

The DreamBooth dataset (``prompts_and_classes.txt``) defines 25 prompts for objects and 25 for live
subjects (pets). Each template holds ``{0}`` = the unique identifier (``sks``) and ``{1}`` = the class
noun (``dog``): ``"a {0} {1} in the jungle"`` gives ``"a sks dog in the jungle"``. The first 10 prompts
(recontextualisation) and the last 5 (property modification) are shared; prompts 11-20 differ
(object scenes vs. accessories and outfits for pets).

Generation uses the prompt **with** the identifier. CLIP-T compares the image with the prompt
**without** it (``"a dog in the jungle"``): the identifier is a rare token that CLIP's text encoder
never learned, so it would only add noise to text alignment (``text_kind="class"``; ``"full"`` keeps
it, for comparison with papers that do).
"""

from __future__ import annotations

import re
from pathlib import Path

from dash_diffusion.errors import DashError

#: Prompt kinds of the protocol: ``object`` (things) and ``live`` (animals).
KINDS: tuple[str, ...] = ("object", "live")

_SHARED_SCENES: tuple[str, ...] = (
    "a {0} {1} in the jungle",
    "a {0} {1} in the snow",
    "a {0} {1} on the beach",
    "a {0} {1} on a cobblestone street",
    "a {0} {1} on top of pink fabric",
    "a {0} {1} on top of a wooden floor",
    "a {0} {1} with a city in the background",
    "a {0} {1} with a mountain in the background",
    "a {0} {1} with a blue house in the background",
    "a {0} {1} on top of a purple rug in a forest",
)

_SHARED_PROPERTIES: tuple[str, ...] = (
    "a red {0} {1}",
    "a purple {0} {1}",
    "a shiny {0} {1}",
    "a wet {0} {1}",
    "a cube shaped {0} {1}",
)

#: The 25 object prompts, in the official order.
OBJECT_PROMPTS: tuple[str, ...] = _SHARED_SCENES + (
    "a {0} {1} with a wheat field in the background",
    "a {0} {1} with a tree and autumn leaves in the background",
    "a {0} {1} with the Eiffel Tower in the background",
    "a {0} {1} floating on top of water",
    "a {0} {1} floating in an ocean of milk",
    "a {0} {1} on top of green grass with sunflowers around it",
    "a {0} {1} on top of a mirror",
    "a {0} {1} on top of the sidewalk in a crowded street",
    "a {0} {1} on top of a dirt road",
    "a {0} {1} on top of a white rug",
) + _SHARED_PROPERTIES

#: The 25 live-subject prompts, in the official order.
LIVE_PROMPTS: tuple[str, ...] = _SHARED_SCENES + (
    "a {0} {1} wearing a red hat",
    "a {0} {1} wearing a santa hat",
    "a {0} {1} wearing a rainbow scarf",
    "a {0} {1} wearing a black top hat and a monocle",
    "a {0} {1} in a chef outfit",
    "a {0} {1} in a firefighter outfit",
    "a {0} {1} in a police outfit",
    "a {0} {1} wearing pink glasses",
    "a {0} {1} wearing a yellow shirt",
    "a {0} {1} in a purple wizard outfit",
) + _SHARED_PROPERTIES

#: The 30 subjects of the DreamBooth dataset and their class nouns.
SUBJECT_CLASSES: dict[str, str] = {
    "backpack": "backpack",
    "backpack_dog": "backpack",
    "bear_plushie": "stuffed animal",
    "berry_bowl": "bowl",
    "can": "can",
    "candle": "candle",
    "cat": "cat",
    "cat2": "cat",
    "clock": "clock",
    "colorful_sneaker": "sneaker",
    "dog": "dog",
    "dog2": "dog",
    "dog3": "dog",
    "dog5": "dog",
    "dog6": "dog",
    "dog7": "dog",
    "dog8": "dog",
    "duck_toy": "toy",
    "fancy_boot": "boot",
    "grey_sloth_plushie": "stuffed animal",
    "monster_toy": "toy",
    "pink_sunglasses": "glasses",
    "poop_emoji": "toy",
    "rc_car": "toy",
    "red_cartoon": "cartoon",
    "robot_toy": "toy",
    "shiny_sneaker": "sneaker",
    "teapot": "teapot",
    "vase": "vase",
    "wolf_plushie": "stuffed animal",
}

#: Classes that get the live-subject prompts by default: the dataset's 9 live subjects are cats and dogs.
LIVE_CLASSES: frozenset[str] = frozenset({"cat", "dog"})

DEFAULT_TOKEN = "sks"


def prompt_templates(kind: str) -> tuple[str, ...]:
    """The 25 templates of ``kind`` (``object`` or ``live``)."""
    if kind == "object":
        return OBJECT_PROMPTS
    if kind == "live":
        return LIVE_PROMPTS
    raise DashError(f"unknown prompt kind {kind!r}: use one of {', '.join(KINDS)}")


def _collapse_spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def format_prompt(template: str, token: str, class_name: str) -> str:
    """The generation prompt: ``template`` with ``{0}`` = ``token`` and ``{1}`` = ``class_name``."""
    return _collapse_spaces(template.format(token, class_name))


def clip_t_text(template: str, token: str, class_name: str, text_kind: str = "class") -> str:
    """The text CLIP-T compares with: without the identifier (``class``) or the full prompt (``full``)."""
    if text_kind == "class":
        return format_prompt(template, "", class_name)
    if text_kind == "full":
        return format_prompt(template, token, class_name)
    raise DashError(f"unknown CLIP-T text kind {text_kind!r}: use 'class' or 'full'")


def default_kind(class_name: str) -> str:
    """``live`` for cats and dogs (the dataset's live subjects), ``object`` for everything else."""
    return "live" if class_name.strip().lower() in LIVE_CLASSES else "object"


def infer_class(subject_dir: str | Path) -> str | None:
    """The class of a subject folder: the dataset's table by folder name, else the name without digits."""
    name = Path(subject_dir).name.strip().lower()
    if name in SUBJECT_CLASSES:
        return SUBJECT_CLASSES[name]
    guess = re.sub(r"[\d_\-\s]+$", "", name).replace("_", " ").strip()
    return guess or None


def select_prompts(templates: tuple[str, ...], spec: str) -> list[int]:
    """Indices of the templates to use: ``all`` or the first ``N`` (indices stay those of the full list)."""
    text = spec.strip().lower()
    if text == "all":
        return list(range(len(templates)))
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= len(templates):
        raise DashError(f"--prompts {spec!r} is not valid: use 'all' or a number from 1 to {len(templates)}")
    return list(range(count))
