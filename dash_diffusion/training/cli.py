"""Command line of the trainer, derived from :class:`~dash_diffusion.training.train_config.TrainConfig`.

Each dataclass field becomes ``--<field>``; booleans are flags (``--cache_latents`` also has
``--no_cache_latents``); ``aliases`` in a field's metadata add other spellings. ``--config RUN_TOML``
reads the options from a run file (:mod:`.run_file`, e.g. a previous run's ``run.toml``); options given
on the command line override the file's values. A :class:`DashError` raised while parsing or training is
printed as one line and the process exits with status 2; a run stopped on request (a ``STOP`` file in
``output_dir``, SIGTERM or a first Ctrl-C: :mod:`.stop`) saves a checkpoint and exits with status 0.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Callable, Sequence

from ..cli_runner import run_cli
from .run_file import read_run_file
from .stop import TrainingStopped
from .train_config import GROUP_TITLES, TrainConfig



def _converter(annotation: str) -> Callable[[str], object]:
    base = annotation.replace(" | None", "").strip()
    return {"int": int, "float": float}.get(base, str)


def build_parser(suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """The trainer's parser. With ``suppress_defaults`` no option has a default, so the parsed namespace
    holds only the options given on the command line (what overrides a ``--config`` file)."""
    parser = argparse.ArgumentParser(
        description="DreamBooth fine-tuning of SDXL with LoRA-Dash (plain LoRA for t steps, then s task-specific directions per layer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", metavar="RUN_TOML", default=argparse.SUPPRESS if suppress_defaults else None, help="Read the options from a TOML run file (every run writes one: output_dir/run.toml); options given on the command line override it.")
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for item in fields(TrainConfig):
        meta = item.metadata
        names = [f"--{item.name}", *meta.get("aliases", ())]
        group = groups[meta["group"]]
        default = argparse.SUPPRESS if suppress_defaults else item.default if item.default is not MISSING else None
        if item.type == "bool":
            group.add_argument(*names, dest=item.name, action="store_true", default=default, help=meta["help"])
            if meta.get("negatable"):
                group.add_argument(f"--no_{item.name}", dest=item.name, action="store_false", default=default, help=f"Disable --{item.name}.")
        else:
            group.add_argument(*names, dest=item.name, type=_converter(str(item.type)), default=default, help=meta["help"])
    return parser


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse ``argv`` into a checked :class:`TrainConfig` (raises :class:`DashError` on bad values).

    With ``--config RUN_TOML`` the values come from the run file, then from the options actually given
    on the command line (defaults < file < flags)."""
    values = vars(build_parser().parse_args(argv))
    run_file = values.pop("config")
    if run_file:
        given = vars(build_parser(suppress_defaults=True).parse_args(argv))
        given.pop("config", None)
        values = {**values, **read_run_file(Path(run_file)), **given}
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``train_dreambooth_dash.py``: parse, train, report; one line and exit 2 on user
    errors, exit 0 with a line saying how to resume when the run was stopped on request."""

    def job() -> str:
        config = parse_config(argv)
        from .train import train  # heavy imports after the arguments are known to be valid

        try:
            return f"adapter written to {train(config)}"
        except TrainingStopped as stopped:
            return str(stopped)

    quiet = ("httpx", "urllib3", "PIL", "accelerate", "accelerate.checkpointing", "accelerate.accelerator")
    return run_cli(job, quiet, "the last checkpoint is intact; resume with --resume_from_checkpoint latest")
