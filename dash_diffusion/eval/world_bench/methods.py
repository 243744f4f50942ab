"""The methods the mini-DreamBench compares, as trainer options (everything else is shared).

| name | what | rank of the exported file |
|---|---|---|
| ``lora_r4`` | plain LoRA, r = 4: the reference every other method is paired with | 4 |
| ``dash_t25`` | LoRA-Dash, r = 4, s = 8, t = 25 (the paper's SDXL run counted in optimizer steps) | 12 |
| ``dash_t100`` | LoRA-Dash, r = 4, s = 8, t = 100 (the paper's default t) | 12 |
| ``lora_r12`` | plain LoRA, r = 12: as many exported directions as LoRA-Dash's file | 12 |
| ``dash_t100_prior`` | ``dash_t100`` with prior preservation (class images of the base model) | 12 |
| ``lora_r4_prior`` | ``lora_r4`` with prior preservation (not run by default) | 4 |

Every method trains through the project's trainer (:func:`dash_diffusion.training.train.train`) with the
same photos, instance prompt, steps, learning rate and seed; plain LoRA is the trainer's ``no_dash``
(the identical loop with s = 0). ``base`` is the untrained model's row (no adapter, class prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import unknown_name

BASE = "base"
"""The row of the base model (no training)."""
REFERENCE = "lora_r4"
"""The method every paired difference is taken against."""


@dataclass(frozen=True)
class Method:
    """One way of training the adapter."""

    name: str
    label: str
    rank: int
    directions: int = 0
    warmup: int = 0
    prior: bool = False

    @property
    def dash(self) -> bool:
        return self.directions > 0

    @property
    def exported_rank(self) -> int:
        """The rank of the diffusers file: ``r + s`` for LoRA-Dash, ``r`` for LoRA."""
        return self.rank + self.directions

    def train_options(self, steps: int) -> dict[str, Any]:
        """The :class:`~dash_diffusion.training.train_config.TrainConfig` options that make this method."""
        if self.dash and self.warmup >= steps:
            raise ValueError(f"{self.name}: t = {self.warmup} leaves no dash phase in {steps} steps")
        options: dict[str, Any] = {"rank": self.rank, "no_dash": not self.dash, "with_prior_preservation": self.prior}
        if self.dash:
            options.update(dash_directions=self.directions, dash_warmup_steps=self.warmup)
        return options


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("lora_r4", "LoRA r=4", 4),
        Method("dash_t25", "LoRA-Dash r=4 s=8 t=25", 4, 8, 25),
        Method("dash_t100", "LoRA-Dash r=4 s=8 t=100", 4, 8, 100),
        Method("lora_r12", "LoRA r=12", 12),
        Method("dash_t100_prior", "LoRA-Dash t=100 + prior", 4, 8, 100, prior=True),
        Method("lora_r4_prior", "LoRA r=4 + prior", 4, prior=True),
    )
}
DEFAULT_METHODS: tuple[str, ...] = ("lora_r4", "dash_t25", "dash_t100", "lora_r12", "dash_t100_prior")
PRIOR_TWINS: dict[str, str] = {"dash_t100_prior": "dash_t100", "lora_r4_prior": "lora_r4"}
"""Each prior-preservation method and the same method without it (their paired difference is the
effect of prior preservation)."""


def method_named(name: str) -> Method:
    """The method ``name`` (a one-line :class:`DashError` listing the names otherwise)."""
    if name not in METHODS:
        raise unknown_name("method", name, METHODS, "--methods")
    return METHODS[name]


def label_of(name: str) -> str:
    """The table label of a method or of the base row."""
    return "base model (class prompts)" if name == BASE else METHODS[name].label


def run_folder(root: Path, subject: str, method: str, seed: int) -> Path:
    """Where one (subject, method, seed) run keeps its adapter, images and result."""
    return root / "runs" / subject / method / f"seed{seed}"
