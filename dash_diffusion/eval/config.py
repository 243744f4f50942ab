"""``EvalConfig``: the options of one DreamBooth evaluation run, checked before anything is loaded."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dash_diffusion.errors import DashError

from .features import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL
from .generation import DTYPES, SEED_STRIDE
from .prompts import DEFAULT_TOKEN, KINDS, OBJECT_PROMPTS, select_prompts

DEFAULT_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
BASE_ROW = "base"
CLIP_T_TEXTS = ("class", "full")
JUDGES = ("dino_clip", "world")
"""``dino_clip``: DreamBooth's DINO, CLIP-I and CLIP-T (real photos, SDXL); ``world``: the project's world
judges on a held-out subject of the procedural world (``builtin:mini-sdxl``, :mod:`.world_runner`)."""
WORLD_RESOLUTION = 128
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class EvalConfig:
    """Everything that determines a run's images and scores (recorded in ``run.json``)."""

    subject_dir: str
    output_dir: str = "outputs/eval"
    base: str = DEFAULT_BASE
    vae: str | None = None
    variant: str | None = None
    adapters: list[tuple[str, str]] = field(default_factory=list)
    no_base: bool = False
    reference: str | None = None
    class_name: str | None = None
    token: str = DEFAULT_TOKEN
    kind: str | None = None
    clip_t_text: str = "class"
    num_images: int = 4
    prompts: str = "all"
    steps: int = 50
    guidance: float = 5.0
    resolution: int = 1024
    seed: int = 0
    batch_size: int = 4
    dino_model: str = DEFAULT_DINO_MODEL
    clip_model: str = DEFAULT_CLIP_MODEL
    device: str = "auto"
    dtype: str = "auto"
    grid_cell: int = 256
    overwrite: bool = False
    judges: str = "dino_clip"
    world_subject: str | None = None

    def __post_init__(self) -> None:
        self.adapters = [tuple(pair) for pair in self.adapters]  # type: ignore[misc]
        self.check()

    def check(self) -> None:
        """Raise a one-line :class:`DashError` for the first option that cannot work."""
        names = [name for name, _ in self.adapters]
        for name in names:
            if not _NAME.match(name):
                raise DashError(f"adapter name {name!r} is not valid: use letters, digits, '_', '-' or '.' (e.g. --adapter dash=outputs/dog)")
        if BASE_ROW in names:
            raise DashError(f"adapter name '{BASE_ROW}' is reserved for the base model row: pick another name")
        if len(set(names)) != len(names):
            raise DashError(f"adapter names must be unique, got {', '.join(names)}")
        if self.no_base and not self.adapters:
            raise DashError("nothing to evaluate: pass --adapter NAME=PATH, or drop --no_base to score the base model")
        if self.reference is not None and self.reference not in names:
            raise DashError(f"--reference {self.reference!r} is not one of the adapters ({', '.join(names) or 'none'})")
        if self.kind is not None and self.kind not in KINDS:
            raise DashError(f"--kind {self.kind!r} is not valid: use object or live")
        if self.clip_t_text not in CLIP_T_TEXTS:
            raise DashError(f"--clip_t_text {self.clip_t_text!r} is not valid: use class or full")
        if self.dtype not in DTYPES:
            raise DashError(f"--dtype {self.dtype!r} is not valid: use one of {', '.join(DTYPES)}")
        if not self.token.strip() or " " in self.token.strip():
            raise DashError(f"--token {self.token!r} must be one word, e.g. sks")
        if self.judges not in JUDGES:
            raise DashError(f"--judges {self.judges!r} is not valid: use one of {', '.join(JUDGES)}")
        if self.judges == "world":
            self._check_world()
        else:
            select_prompts(OBJECT_PROMPTS, self.prompts)  # both lists have 25 prompts
        _positive("num_images", self.num_images, SEED_STRIDE)
        _positive("steps", self.steps)
        _positive("batch_size", self.batch_size)
        _positive("grid_cell", self.grid_cell)
        if self.resolution < 8 or self.resolution % 8:
            raise DashError(f"--resolution {self.resolution} must be a positive multiple of 8 (1024 for SDXL)")
        if self.guidance < 0:
            raise DashError(f"--guidance {self.guidance} must be >= 0")
        if self.seed < 0:
            raise DashError(f"--seed {self.seed} must be >= 0")

    def _check_world(self) -> None:
        """The options ``--judges world`` needs: a held-out subject, 128 px, a valid prompt count."""
        from .world_bench.photos import subject_named
        from .world_bench.prompts import subject_prompts

        if not self.world_subject:
            raise DashError("--judges world needs --world_subject NAME, the held-out world subject the adapters learned (e.g. dotted_ball)")
        subject_named(self.world_subject)
        if self.resolution != WORLD_RESOLUTION:
            raise DashError(f"--judges world scores {WORLD_RESOLUTION} px pictures of the world: pass --resolution {WORLD_RESOLUTION} (builtin:mini-sdxl's size)")
        select_prompts(tuple(prompt.text for prompt in subject_prompts(self.world_subject, self.token.strip())), self.prompts)

    def rows(self) -> list[tuple[str, str | None]]:
        """The evaluated rows in order: the base model (unless ``no_base``), then each adapter."""
        base = [] if self.no_base else [(BASE_ROW, None)]
        return base + [(name, path) for name, path in self.adapters]

    def reference_row(self) -> str | None:
        """The adapter others are compared with image by image: ``reference`` or the first adapter."""
        if self.reference:
            return self.reference
        return self.adapters[0][0] if len(self.adapters) > 1 else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["adapters"] = [{"name": name, "path": path} for name, path in self.adapters]
        return data


def _positive(option: str, value: int, maximum: int | None = None) -> None:
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise DashError(f"--{option} {value} must be at least 1{bound}")


def parse_adapter(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` -> ``(NAME, PATH)``."""
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise DashError(f"--adapter {spec!r} is not NAME=PATH: e.g. --adapter dash=outputs/dog --adapter lora=outputs/dog_nodash")
    return name.strip(), str(Path(path.strip()).expanduser())
