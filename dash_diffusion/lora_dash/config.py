"""Typed configuration of the LoRA-Dash adapter.

:class:`DashConfig` is the one place where the adapter's hyper-parameters live; layers receive plain
numbers from it and keep no constants of their own (the reference code hard-codes ``index = 8`` and
``warmup = 100`` inside its layer, which this project does not copy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import DashError

#: Attention projections of the diffusers SDXL UNet (self- and cross-attention of every transformer block).
UNET_TARGET_MODULES: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
#: Attention projections of the two CLIP text encoders.
TEXT_ENCODER_TARGET_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
#: Initialisations of ``lora_A`` (``lora_B`` always starts at zero), see :class:`~.layer.DashLinear`.
LORA_INITS: tuple[str, ...] = ("gaussian", "kaiming")


@dataclass
class DashConfig:
    """Hyper-parameters of LoRA-Dash (Si et al., ICLR 2025, arXiv 2409.01035).

    The adapted layer computes ``y = W x + b + (alpha / r) B A x + U_s diag(delta) V_s^T x``.
    """

    rank: int = 4
    """r: rank of the LoRA factors ``A`` (r x in) and ``B`` (out x r)."""
    alpha: float | None = None
    """LoRA alpha; the LoRA term is scaled by ``alpha / r``. ``None`` means ``alpha = rank`` (scale 1)."""
    dropout: float = 0.0
    """Dropout probability on the adapter's input (training only)."""
    num_directions: int = 8
    """s: number of task-specific directions selected at the phase boundary. 0 gives a plain LoRA."""
    warmup_steps: int = 100
    """t: optimizer steps of plain LoRA training before the directions are selected."""
    target_modules: tuple[str, ...] = field(default_factory=lambda: UNET_TARGET_MODULES)
    """Qualified-name suffixes of the ``nn.Linear`` / ``nn.Conv2d`` modules to wrap (``"to_out.0"`` matches
    ``...attn1.to_out.0``, ``"conv1"`` every resnet's first convolution)."""
    init_lora_weights: str = "gaussian"
    """Init of ``A``: ``"gaussian"`` (``A ~ N(0, 1/r^2)``, PEFT's ``init_lora_weights="gaussian"``, used by the
    paper's SDXL code and diffusers' SDXL DreamBooth script) or ``"kaiming"`` (Kaiming-uniform, PEFT's
    default and kohya's). Kept last: positional construction relies on the order of the fields above."""

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = tuple(m.strip() for m in self.target_modules.split(",") if m.strip())
        self.target_modules = tuple(self.target_modules)
        if int(self.rank) != self.rank or self.rank < 1:
            raise DashError(f"rank must be a positive integer, got {self.rank!r}: pass e.g. --rank 4")
        if self.alpha is not None and not self.alpha > 0:
            raise DashError(f"alpha must be positive, got {self.alpha!r}: leave it unset to use alpha = rank")
        if not 0.0 <= self.dropout < 1.0:
            raise DashError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if int(self.num_directions) != self.num_directions or self.num_directions < 0:
            raise DashError(f"num_directions must be an integer >= 0, got {self.num_directions!r}")
        if int(self.warmup_steps) != self.warmup_steps or self.warmup_steps < 0:
            raise DashError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not self.target_modules:
            raise DashError("target_modules is empty: name at least one module suffix, e.g. to_q,to_k,to_v,to_out.0")
        if self.init_lora_weights not in LORA_INITS:
            raise DashError(f"init_lora_weights must be one of {', '.join(LORA_INITS)}, got {self.init_lora_weights!r}")

    @property
    def lora_alpha(self) -> float:
        """The effective alpha (``rank`` when ``alpha`` is None)."""
        return float(self.rank if self.alpha is None else self.alpha)

    @property
    def use_dash(self) -> bool:
        """False for a plain-LoRA run (``num_directions == 0``)."""
        return self.num_directions > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict, with ``alpha`` resolved."""
        data = asdict(self)
        data["alpha"] = self.lora_alpha
        data["target_modules"] = list(self.target_modules)
        return data
