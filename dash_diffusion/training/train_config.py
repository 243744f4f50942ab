"""``TrainConfig``: every option of the DreamBooth trainer, typed, documented and checked.

The command line of ``train_dreambooth_dash.py`` is derived from this dataclass (see :mod:`.cli`): each
field is an option of the same name and its ``help`` metadata is the option's help text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import DashError
from ..formats.sgm_names import (
    KOHYA_UNET_RESNET_TARGETS,
    KOHYA_UNET_TARGETS,
    check_kohya_targets,
)
from ..lora_dash.config import UNET_TARGET_MODULES, DashConfig

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
OPTIMIZERS = ("adamw", "adamw8bit", "prodigy")
TRACKERS = ("none", "tensorboard", "wandb")
SAVE_PRECISIONS = ("fp32", "fp16", "bf16")
INIT_LORA_WEIGHTS = ("gaussian", "kaiming")
#: The option groups (``group`` of each field's metadata) in the order of ``--help`` and of run files.
GROUP_TITLES = {
    "model": "model",
    "data": "data",
    "prior": "prior preservation",
    "adapter": "LoRA-Dash adapter",
    "optim": "optimisation",
    "speed": "memory and speed",
    "validation": "validation and logging",
    "output": "output and checkpoints",
}


def opt(default: Any, help: str, group: str, **extra: Any) -> Any:
    """A dataclass field carrying its CLI help text and option group."""
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass
class TrainConfig:
    """Options of one DreamBooth LoRA-Dash training run (defaults follow diffusers' SDXL DreamBooth LoRA script)."""

    # model
    pretrained_model_name_or_path: str = opt(DEFAULT_MODEL, "Hub id or local diffusers SDXL folder, or builtin:mini-sdxl / builtin:tiny-sdxl.", "model")
    pretrained_vae_model_name_or_path: str | None = opt(None, "A VAE to use instead of the pipeline's (e.g. an fp16-safe SDXL VAE).", "model")
    revision: str | None = opt(None, "Revision of the model on the hub.", "model")
    variant: str | None = opt(None, "Weight variant to load, e.g. fp16.", "model")
    # data
    instance_dir: str | None = opt(None, "Folder with the subject's photos (alias --instance_data_dir).", "data", aliases=("--instance_data_dir",))
    instance_prompt: str | None = opt(None, "Prompt for the subject; default 'a photo of sks <class>' from the folder name.", "data")
    instance_mask_dir: str | None = opt(None, "Folder of loss masks named like the photos (<stem>.png, white = subject, black = ignored, grey = partial): only the masked pixels count in the instance loss (sd-scripts' masked_loss), so backgrounds are not learnt.", "data")
    resolution: int = opt(1024, "Training resolution (side of the square, or the area of the buckets).", "data")
    center_crop: bool = opt(False, "Crop the centre instead of a random (fixed per image) window.", "data")
    random_flip: bool = opt(False, "Flip images horizontally at random (a fresh choice per epoch).", "data")
    repeats: int = opt(1, "Repeat the instance images this many times per epoch.", "data")
    bucketing: bool = opt(False, "Aspect-ratio bucketing: train non-square photos at their own aspect.", "data")
    bucket_step: int = opt(64, "Bucket sides are multiples of this many pixels.", "data")
    train_batch_size: int = opt(1, "Images per process and micro-step.", "data")
    # prior preservation
    with_prior_preservation: bool = opt(False, "Add a prior-preservation loss on class images.", "prior")
    class_dir: str | None = opt(None, "Folder of class images (alias --class_data_dir); missing ones are generated.", "prior", aliases=("--class_data_dir",))
    class_prompt: str | None = opt(None, "Prompt of the class images; default 'a photo of a <class>' from the instance folder name.", "prior")
    num_class_images: int = opt(100, "Class images used (the first ones by name); missing ones are generated with the base model.", "prior")
    prior_loss_weight: float = opt(1.0, "Weight of the prior-preservation loss.", "prior")
    sample_batch_size: int = opt(4, "Batch size when generating class images.", "prior")
    # adapter
    rank: int = opt(4, "LoRA rank r.", "adapter")
    lora_alpha: float | None = opt(None, "LoRA alpha (default: rank).", "adapter")
    lora_dropout: float = opt(0.0, "Dropout on the adapter input.", "adapter")
    init_lora_weights: str = opt("gaussian", "Init of lora_A: gaussian (std 1/r, diffusers' SDXL script and the paper) or kaiming (PEFT's default).", "adapter")
    target_modules: str = opt(",".join(UNET_TARGET_MODULES), f"Comma-separated UNet module suffixes to adapt, among {','.join(KOHYA_UNET_TARGETS)} (every Linear of the transformer blocks that sd-scripts adapts) and {','.join(KOHYA_UNET_RESNET_TARGETS)} (the convolutions and time projections of the resnets and samplers: LoCon, sd-scripts' conv_dim).", "adapter")
    dash_warmup_steps: int = opt(100, "t: optimizer steps of plain LoRA before the directions are selected (the paper's SDXL run: 25 with accumulation 4).", "adapter")
    dash_directions: int = opt(8, "s: task-specific directions per layer.", "adapter")
    no_dash: bool = opt(False, "Train a plain LoRA through the identical loop (the baseline).", "adapter")
    train_text_encoder: bool = opt(False, "Also put LoRA-Dash on both CLIP text encoders.", "adapter")
    # optimisation
    optimizer: str = opt("adamw", f"One of {', '.join(OPTIMIZERS)}.", "optim")
    use_8bit_adam: bool = opt(False, "Shortcut for --optimizer adamw8bit (needs bitsandbytes).", "optim")
    learning_rate: float = opt(1e-4, "Learning rate (use 1.0 with prodigy).", "optim")
    text_encoder_lr: float = opt(5e-6, "Learning rate of the text-encoder adapters (diffusers' default; prodigy uses --learning_rate).", "optim")
    scale_lr: bool = opt(False, "Multiply the LR by batch size x accumulation x processes.", "optim")
    lr_scheduler: str = opt("constant", f"One of {', '.join(LR_SCHEDULERS)}.", "optim")
    lr_warmup_steps: int = opt(0, "LR warm-up steps.", "optim")
    lr_num_cycles: int = opt(1, "Cycles of cosine_with_restarts.", "optim")
    lr_power: float = opt(1.0, "Power of the polynomial scheduler.", "optim")
    adam_beta1: float = opt(0.9, "Adam beta1.", "optim")
    adam_beta2: float = opt(0.999, "Adam beta2.", "optim")
    adam_weight_decay: float = opt(1e-4, "Decoupled weight decay.", "optim")
    adam_epsilon: float = opt(1e-8, "Adam epsilon.", "optim")
    gradient_accumulation_steps: int = opt(1, "Micro-steps per optimizer step.", "optim")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm (0 disables).", "optim")
    max_train_steps: int | None = opt(None, "Optimizer steps; overrides --num_train_epochs.", "optim")
    num_train_epochs: int = opt(1, "Epochs when --max_train_steps is not given.", "optim")
    seed: int = opt(0, "Seed of everything random (data order, noise, crops, flips).", "optim")
    snr_gamma: float | None = opt(None, "Min-SNR loss weighting gamma (5.0 is common).", "optim")
    noise_offset: float = opt(0.0, "Noise offset (e.g. 0.05) for darker/brighter images.", "optim")
    # memory and speed
    mixed_precision: str = opt("no", "no, fp16 or bf16 (adapter weights stay in float32).", "speed")
    gradient_checkpointing: bool = opt(False, "Recompute activations in backward to save memory.", "speed")
    cache_latents: bool = opt(True, "Encode images and prompts once (when the text encoders are frozen).", "speed", negatable=True)
    allow_tf32: bool = opt(False, "Allow TF32 matmuls on Ampere+ GPUs.", "speed")
    # validation, logging, output
    validation_prompt: str | None = opt(None, "Prompt for validation images.", "validation")
    num_validation_images: int = opt(2, "Validation images per run.", "validation")
    validation_steps: int = opt(100, "Run validation every N optimizer steps (and at the end).", "validation")
    validation_inference_steps: int = opt(25, "Denoising steps of validation images.", "validation")
    report_to: str = opt("none", "none, tensorboard or wandb (the package must be installed).", "validation")
    output_dir: str = opt("outputs/dash-model", "Where adapters, checkpoints, logs and validation images go.", "output")
    save_precision: str = opt("fp32", "Precision of the exported files: fp32 (exact), fp16 or bf16.", "output")
    checkpointing_steps: int = opt(500, "Save a resumable checkpoint every N optimizer steps.", "output")
    checkpoints_total_limit: int | None = opt(None, "Keep at most this many checkpoints.", "output")
    resume_from_checkpoint: str | None = opt(None, "'latest' or a checkpoint folder.", "output")

    def __post_init__(self) -> None:
        if self.use_8bit_adam:
            self.optimizer = "adamw8bit"
        if not self.instance_dir:
            raise DashError("no training images given: pass --instance_dir FOLDER with photos of the subject")
        positive = ("resolution", "train_batch_size", "gradient_accumulation_steps", "repeats", "num_train_epochs", "checkpointing_steps", "validation_steps", "bucket_step", "sample_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise DashError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.resolution % 8:
            raise DashError(f"--resolution must be a multiple of 8, got {self.resolution}")
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise DashError(f"--max_train_steps must be at least 1, got {self.max_train_steps}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise DashError(f"--mixed_precision must be no, fp16 or bf16, got '{self.mixed_precision}'")
        if self.optimizer not in OPTIMIZERS:
            raise DashError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise DashError(f"--lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, got '{self.lr_scheduler}'")
        for name, allowed in (("report_to", TRACKERS), ("save_precision", SAVE_PRECISIONS), ("init_lora_weights", INIT_LORA_WEIGHTS)):
            if getattr(self, name) not in allowed:
                raise DashError(f"--{name} must be one of {', '.join(allowed)}, got '{getattr(self, name)}'")
        if self.with_prior_preservation and not self.class_dir:
            raise DashError("--with_prior_preservation needs --class_dir FOLDER (missing class images are generated there)")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise DashError("--checkpoints_total_limit must be at least 1")
        check_kohya_targets("unet", self.dash_config().target_modules)  # also validates rank, alpha, dropout, s, t

    def dash_config(self) -> DashConfig:
        """The UNet adapter's config (``--no_dash`` means s = 0)."""
        return DashConfig(
            rank=self.rank,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            num_directions=0 if self.no_dash else self.dash_directions,
            warmup_steps=self.dash_warmup_steps,
            target_modules=self.target_modules,
            init_lora_weights=self.init_lora_weights,
        )

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
