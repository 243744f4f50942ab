"""Command line of the trainer, derived from :class:`~dash_diffusion.training.train_config.TrainConfig`.

Each dataclass field becomes ``--<field>``; booleans are flags (``--cache_latents`` also has
``--no_cache_latents``); ``aliases`` in a field's metadata add other spellings. A :class:`DashError`
raised while parsing or training is printed as one line and the process exits with status 2.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Callable, Sequence

from ..cli_runner import run_cli
from .train_config import TrainConfig

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


def _converter(annotation: str) -> Callable[[str], object]:
    base = annotation.replace(" | None", "").strip()
    return {"int": int, "float": float}.get(base, str)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="DreamBooth fine-tuning of SDXL with LoRA-Dash (plain LoRA for t steps, then s task-specific directions per layer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for item in fields(TrainConfig):
        meta = item.metadata
        names = [f"--{item.name}", *meta.get("aliases", ())]
        group = groups[meta["group"]]
        default = item.default if item.default is not MISSING else None
        if item.type == "bool":
            if meta.get("negatable"):
                group.add_argument(*names, dest=item.name, action="store_true", default=default, help=meta["help"])
                group.add_argument(f"--no_{item.name}", dest=item.name, action="store_false", help=f"Disable --{item.name}.")
            else:
                group.add_argument(*names, dest=item.name, action="store_true", default=default, help=meta["help"])
        else:
            group.add_argument(*names, dest=item.name, type=_converter(str(item.type)), default=default, help=meta["help"])
    return parser


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse ``argv`` into a checked :class:`TrainConfig` (raises :class:`DashError` on bad values)."""
    namespace = build_parser().parse_args(argv)
    return TrainConfig(**vars(namespace))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``train_dreambooth_dash.py``: parse, train, report; one line and exit 2 on user errors."""

    def job() -> str:
        config = parse_config(argv)
        from .train import train  # heavy imports after the arguments are known to be valid

        return f"adapter written to {train(config)}"

    quiet = ("httpx", "urllib3", "PIL", "accelerate", "accelerate.checkpointing", "accelerate.accelerator")
    return run_cli(job, quiet, "the last checkpoint is intact; resume with --resume_from_checkpoint latest")
