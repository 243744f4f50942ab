"""``StudySettings``: what a mini-DreamBench study runs, checked before anything is trained.

The *protocol* (:meth:`StudySettings.protocol`) is the part that decides the numbers and is the same for
every method: model and judges fingerprints, training steps, learning rate, resolution, prompts, images
per prompt, sampling, class images and the seed rules. ``subjects``, ``methods``, ``seeds``, ``jobs`` and
``threads`` only choose which runs are made and how fast, so a study can be extended later.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dash_diffusion.errors import DashError
from dash_diffusion.eval.generation import SEED_STRIDE
from dash_diffusion.models.world import SUBJECTS

from .methods import DEFAULT_METHODS, method_named
from .photos import SIZE, subject_named
from .prompts import PROMPTS_PER_SUBJECT
from .rows import Sampling
from .store import digest_files, digest_folder

EVAL_SEED_STRIDE = 100_000
"""Image ``i`` of prompt ``p`` in a run of training seed ``k`` is drawn from seed ``100000 k + 1000 p + i``:
every method of one (subject, seed) sees the same noise, and other training seeds see other noise."""


def eval_seed(training_seed: int) -> int:
    """The base image seed of the runs of ``training_seed`` (see :data:`EVAL_SEED_STRIDE`)."""
    return EVAL_SEED_STRIDE * training_seed


@dataclass(frozen=True)
class StudySettings:
    """Which runs a study makes and how (see the module docstring)."""

    out: Path
    subjects: tuple[str, ...] = tuple(SUBJECTS)
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 300
    learning_rate: float = 1e-3
    prompts: int = PROMPTS_PER_SUBJECT
    num_images: int = 4
    sampling: Sampling = field(default_factory=Sampling)
    class_images: int = 50
    model: str = "builtin:mini-sdxl"
    jobs: int = 1
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)

    def check(self) -> None:
        """Raise a one-line :class:`DashError` for the first setting that cannot work."""
        for name in self.subjects:
            subject_named(name)
        for name in self.methods:
            method_named(name)
        for label, values in (("--subjects", self.subjects), ("--methods", self.methods), ("--seeds", self.seeds)):
            if not values or len(set(values)) != len(values):
                raise DashError(f"{label} must name at least one value and no value twice, got {', '.join(map(str, values)) or 'nothing'}")
        if any(seed < 0 for seed in self.seeds):
            raise DashError(f"--seeds must be >= 0, got {', '.join(map(str, self.seeds))}")
        for option, value in (("--steps", self.steps), ("--jobs", self.jobs), ("--threads", self.threads), ("--num_images", self.num_images), ("--inference_steps", self.sampling.steps)):
            if value < 1:
                raise DashError(f"{option} must be at least 1, got {value}")
        if not 1 <= self.prompts <= PROMPTS_PER_SUBJECT:
            raise DashError(f"--prompts must be from 1 to {PROMPTS_PER_SUBJECT}, got {self.prompts}")
        if self.num_images > SEED_STRIDE:
            raise DashError(f"--num_images must be at most {SEED_STRIDE}, got {self.num_images}")
        for name in self.methods:
            method = method_named(name)
            if method.dash and method.warmup >= self.steps:
                raise DashError(f"--steps {self.steps} leaves {name} (t = {method.warmup}) no dash phase: pass --steps above {method.warmup} or leave {name} out of --methods")
            if method.prior and self.class_images < 1:
                raise DashError(f"{name} needs class images: pass --class_images 1 or more")
        if self.learning_rate <= 0:
            raise DashError(f"--learning_rate must be positive, got {self.learning_rate}")

    @property
    def needs_class_images(self) -> bool:
        return any(method_named(name).prior for name in self.methods)

    def protocol(self) -> dict[str, Any]:
        """Everything that decides a run's numbers (stored in every result, compared on resume)."""
        from dash_diffusion.models.builtin import resolve_model_path
        from dash_diffusion.models.world_judges import DEFAULT_WEIGHTS

        model_folder = Path(resolve_model_path(self.model))
        return {
            "model": self.model,
            "model_sha256": digest_folder(model_folder) if model_folder.is_dir() else None,
            "judges_sha256": digest_files([DEFAULT_WEIGHTS]),
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "resolution": SIZE,
            "prompts": self.prompts,
            "num_images": self.num_images,
            "sampling": asdict(self.sampling),
            "class_images": self.class_images,
            "eval_seed_rule": f"{EVAL_SEED_STRIDE} * training_seed + {SEED_STRIDE} * prompt_index + image_index",
        }
