"""Write a held-out world subject's photos, to train on and to evaluate against.

    python -m dash_diffusion.eval.world_bench.photos_cli --subject dotted_ball --out data/dotted_ball

writes ``train/`` (the five training photos) and ``reference/`` (the eight reference photos) under
``--out``; then ``train_dreambooth_dash.py --instance_dir data/dotted_ball/train --instance_prompt "a photo
of sks ball"`` learns it and ``evaluate_dreambooth.py --judges world --world_subject dotted_ball
--subject_dir data/dotted_ball/reference --resolution 128 ...`` scores the adapter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dash_diffusion.cli_runner import run_cli
from dash_diffusion.models.world import SUBJECTS, instance_prompt

from .photos import reference_photos, subject_named, training_photos, write_photos


def write_subject(name: str, out: Path) -> tuple[Path, Path]:
    """``out/train`` and ``out/reference`` filled with subject ``name``'s photos."""
    subject_named(name)
    write_photos(training_photos(name), out / "train")
    write_photos(reference_photos(name), out / "reference")
    return out / "train", out / "reference"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dash_diffusion.eval.world_bench.photos_cli", description="Write a held-out world subject's training and reference photos.")
    parser.add_argument("--subject", required=True, help=f"one of {', '.join(SUBJECTS)}")
    parser.add_argument("--out", required=True, type=Path, help="folder that receives train/ and reference/")
    args = parser.parse_args(argv)

    def job() -> str:
        train, reference = write_subject(args.subject, args.out)
        prompt = instance_prompt(SUBJECTS[args.subject].object)
        return f"training photos in {train}, reference photos in {reference}; instance prompt: '{prompt}'"

    return run_cli(job, (), "some photos may be missing: run it again")


if __name__ == "__main__":
    sys.exit(main())
