"""Command line of ``evaluate_dreambooth.py`` and of the ``dash-diffusion-eval`` console script.

Options map one to one onto :class:`~dash_diffusion.eval.config.EvalConfig`; ``--adapter NAME=PATH``
repeats. A :class:`DashError` (bad folder, unloadable model, bad option) is printed as one
``error: ...`` line and the process exits with status 2.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from dash_diffusion.cli_runner import run_cli
from dash_diffusion.errors import DashError

from .config import CLIP_T_TEXTS, DEFAULT_BASE, JUDGES, EvalConfig, parse_adapter
from .features import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL
from .generation import DTYPES
from .prompts import DEFAULT_TOKEN, KINDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(  # prog: the name it was run by (evaluate_dreambooth.py, dash-diffusion-eval)
        description="DreamBooth benchmark (Ruiz et al. 2023): generate the 25 prompts with fixed seeds for the base model and each adapter, score DINO, CLIP-I and CLIP-T, write CSV, markdown and grids.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = parser.add_argument_group("models")
    model.add_argument("--base", default=DEFAULT_BASE, help="SDXL base: hub id, local diffusers folder, builtin:mini-sdxl or builtin:tiny-sdxl.")
    model.add_argument("--vae", default=None, help="Replacement VAE (e.g. madebyollin/sdxl-vae-fp16-fix).")
    model.add_argument("--variant", default=None, help="Weight variant of the base model, e.g. fp16.")
    model.add_argument("--adapter", dest="adapters", action="append", default=[], type=_adapter, metavar="NAME=PATH", help="Adapter to evaluate (trainer output folder or .safetensors LoRA); repeat for several.")
    model.add_argument("--no_base", action="store_true", help="Skip the base-model reference row.")
    model.add_argument("--reference", default=None, help="Adapter the others are compared with image by image (default: the first).")
    model.add_argument("--dino_model", default=DEFAULT_DINO_MODEL, help="DINO ViT (hub id or local folder).")
    model.add_argument("--clip_model", default=DEFAULT_CLIP_MODEL, help="CLIP model (hub id or local folder).")
    model.add_argument("--judges", choices=JUDGES, default="dino_clip", help="dino_clip: DINO, CLIP-I, CLIP-T on the 25 prompts; world: the project's world judges (subject fidelity, whole-image similarity, prompt fidelity) on a held-out world subject's prompts, for builtin:mini-sdxl at --resolution 128.")
    model.add_argument("--world_subject", default=None, help="With --judges world: the held-out world subject the adapters learned (robot, dotted_ball, ...); --subject_dir holds its reference photos (python -m dash_diffusion.eval.world_bench.photos_cli writes them).")
    subject = parser.add_argument_group("subject and prompts")
    subject.add_argument("--subject_dir", required=True, help="Folder of the subject's real photos (the instance images).")
    subject.add_argument("--class_name", default=None, help="Class noun; default from the folder name (DreamBooth table, e.g. berry_bowl -> bowl).")
    subject.add_argument("--token", default=DEFAULT_TOKEN, help="Unique identifier the adapters were trained with.")
    subject.add_argument("--kind", choices=KINDS, default=None, help="Prompt list; default live for cat/dog classes, object otherwise.")
    subject.add_argument("--clip_t_text", choices=CLIP_T_TEXTS, default="class", help="CLIP-T text: prompt without the identifier (class) or the full prompt.")
    subject.add_argument("--prompts", default="all", help="'all' (25) or the first N prompts, for quick runs (with --judges world: all 13 or N spread over scenes, colours and combinations).")
    subject.add_argument("--num_images", type=int, default=4, help="Images per prompt and row.")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--steps", type=int, default=50, help="Inference steps.")
    sampling.add_argument("--guidance", type=float, default=5.0, help="Classifier-free guidance scale.")
    sampling.add_argument("--resolution", type=int, default=1024, help="Side of the generated square images.")
    sampling.add_argument("--seed", type=int, default=0, help="Base seed; image i of prompt p uses seed + 1000 p + i.")
    sampling.add_argument("--batch_size", type=int, default=4, help="Images per pipeline call (does not change the noise).")
    sampling.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    sampling.add_argument("--dtype", choices=DTYPES, default="auto", help="Pipeline dtype; auto = float16 on CUDA, float32 on CPU.")
    output = parser.add_argument_group("output")
    output.add_argument("--output_dir", default="outputs/eval", help="Where images, CSVs, results.md, grids and run.json go.")
    output.add_argument("--grid_cell", type=int, default=256, help="Side of one image in the grids, in pixels.")
    output.add_argument("--overwrite", action="store_true", help="Allow writing into a folder that already holds a run.")
    return parser


def _adapter(spec: str) -> tuple[str, str]:
    try:
        return parse_adapter(spec)
    except DashError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def parse_config(argv: Sequence[str] | None = None) -> EvalConfig:
    """Parse ``argv`` into a checked :class:`EvalConfig` (raises :class:`DashError` on bad values)."""
    return EvalConfig(**vars(build_parser().parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, report; one line and exit 2 on user errors."""

    def job() -> str:
        config = parse_config(argv)
        if config.judges == "world":
            from .world_runner import run_world

            return f"results written to {run_world(config).files['results']}"
        from .runner import run  # heavy imports only once the options are known to be valid

        return f"results written to {run(config).files['results']}"

    quiet = ("httpx", "urllib3", "PIL", "diffusers", "transformers")
    return run_cli(job, quiet, "no results were written (the images generated so far are in the output folder)")
