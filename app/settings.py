"""Generation settings as the UI sends them, and their bounds (checked again on the server)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from dash_diffusion.errors import DashError

from .schedulers import SCHEDULER_NAMES

MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 2048, 8
MAX_STEPS = 150
MAX_GUIDANCE = 30.0
MAX_IMAGES = 4
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 2000


def random_seed() -> int:
    """A seed for the dice button and for seed -1."""
    return random.randint(0, MAX_SEED)


def _number(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DashError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DashError(f"{what} must be a finite number, got {value!r}")
    return number


def _whole(value: object, what: str, low: int, high: int) -> int:
    number = _number(value, what)
    if number != int(number) or not low <= number <= high:
        raise DashError(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


@dataclass(frozen=True)
class RenderSettings:
    """Everything a render needs besides the adapters. ``seed`` -1 means a random one."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 25
    guidance: float = 6.0
    width: int = 1024
    height: int = 1024
    num_images: int = 1
    scheduler: str = "Euler"

    def checked(self) -> RenderSettings:
        """A copy with types normalised and a concrete seed; :class:`DashError` for values out of bounds."""
        prompt = self.prompt if isinstance(self.prompt, str) else ""
        negative = self.negative_prompt if isinstance(self.negative_prompt, str) else ""
        if not prompt.strip():
            raise DashError("the prompt is empty: describe the image (pick an adapter to fill in its trigger prompt)")
        if len(prompt) > MAX_PROMPT_CHARS or len(negative) > MAX_PROMPT_CHARS:
            raise DashError(f"prompts are limited to {MAX_PROMPT_CHARS} characters")
        seed = _whole(self.seed, "seed", -1, MAX_SEED)
        sides = []
        for what, value in (("width", self.width), ("height", self.height)):
            side = _whole(value, what, MIN_SIDE, MAX_SIDE)
            if side % SIDE_STEP:
                raise DashError(f"{what} must be a multiple of {SIDE_STEP} (got {side})")
            sides.append(side)
        guidance = _number(self.guidance, "guidance")
        if not 0.0 <= guidance <= MAX_GUIDANCE:
            raise DashError(f"guidance must be from 0 to {MAX_GUIDANCE:g}, got {self.guidance!r}")
        if self.scheduler not in SCHEDULER_NAMES:
            raise DashError(f"unknown scheduler {self.scheduler!r}: use one of {', '.join(SCHEDULER_NAMES)}")
        return replace(
            self,
            prompt=prompt.strip(),
            negative_prompt=negative.strip(),
            seed=random_seed() if seed == -1 else seed,
            steps=_whole(self.steps, "steps", 1, MAX_STEPS),
            guidance=guidance,
            width=sides[0],
            height=sides[1],
            num_images=_whole(self.num_images, "number of images", 1, MAX_IMAGES),
        )
