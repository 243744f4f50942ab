"""Which DreamBooth recipe shows the sample robot best on builtin:mini-sdxl: the demo's run with one choice changed.

    python benchmarks/demo_recipes.py --markdown docs/benchmarks.md --grid docs/images/demo_recipes.png

Every variant is ``make demo``'s run (the real trainer in-process on the six photos of ``samples/robot``,
LoRA-Dash r=8, s=8, t=100, lr 3e-4, 400 steps, seed 0, then the demo's four scenes at its two seeds with a
stock pipeline) with these choices set:

* **targets**: the Linears of the UNet's transformer blocks (sd-scripts' LoRA set) or those plus the
  resnet and sampler layers (LoCon: ``conv1``, ``conv2``, ``conv_shortcut``, ``time_emb_proj``, the
  down- and upsampler convolutions);
* **masks**: the photos' loss masks (``samples/robot_masks``: only the robot's pixels count) or none;
* **prior**: prior preservation on the demo's 48 world robots at weight 0.3, or none.

Scored by the world's judges on the eight pictures: instance similarity to the photos (mean cosine of
instance embeddings; a render of the subject scores about 0.9, the base model's robots about 0) and how
many show the prompt's scene. One seed per variant: differences of a few hundredths are noise, read the
grid (one row per variant, in the table's order) with the numbers.

The first row trains nothing: the base model's ``a photo of a teal robot <scene>``, the class with the
subject's colour named, at the same seeds. The judge's instance embedding weighs colour heavily, so this
is the score a variant has to beat to show more of the subject than its colour.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from picture_rows import save_picture_rows
from provenance import RunClock, publish

LOCON_TARGETS = "conv1,conv2,conv_shortcut,time_emb_proj,downsamplers.0.conv,upsamplers.0.conv"
VARIANTS: dict[str, dict[str, bool]] = {
    "transformer linears, prior": {"conv": False, "masks": False, "prior": True},
    "transformer linears, masks, prior (make demo)": {"conv": False, "masks": True, "prior": True},
    "transformer linears, masks": {"conv": False, "masks": True, "prior": False},
    "+ LoCon, prior": {"conv": True, "masks": False, "prior": True},
    "+ LoCon, masks, prior": {"conv": True, "masks": True, "prior": True},
    "+ LoCon, masks": {"conv": True, "masks": True, "prior": False},
}
"""Variant name -> whether it adds the resnet/sampler targets, the loss masks and prior preservation."""
WARMUP = 100
"""t, as ``make demo`` (``python -m dash_diffusion.demo --warmup``)."""


def variant_options(output_dir: Path, class_dir: Path, steps: int, conv: bool, masks: bool, prior: bool) -> dict[str, object]:
    """The demo's training options with the variant's choices."""
    from dash_diffusion import demo

    options = demo.training_options(output_dir, steps, WARMUP, demo.DEFAULT_MODEL, class_dir if prior else None)
    if conv:
        options["target_modules"] = f"{options['target_modules']},{LOCON_TARGETS}"
    if not masks:
        options.pop("instance_mask_dir")
    return options


def colour_baseline(scenes: tuple[str, ...], seeds: tuple[int, ...]) -> list:
    """The base model's pictures of ``a photo of a teal robot <scene>`` (the subject's colour, no training)."""
    from diffusers import StableDiffusionXLPipeline

    from dash_diffusion import demo
    from dash_diffusion.models.builtin import resolve_model_path
    from dash_diffusion.models.world import SUBJECTS, class_prompt

    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path(demo.DEFAULT_MODEL))
    pipe.set_progress_bar_config(disable=True)
    colour = SUBJECTS[demo.CLASS].colour
    return [image for scene in scenes for image in demo.render(pipe, class_prompt(demo.CLASS, scene, colour), seeds)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), default=None, help="repeatable; default all")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--grid", type=Path, default=None, help="write the adapters' pictures, one row per variant")
    args = parser.parse_args(argv)
    from dash_diffusion import demo
    from dash_diffusion.models.world_judges import instance_similarity, load_judges
    from dash_diffusion.training.train import train
    from dash_diffusion.training.train_config import TrainConfig

    torch.set_num_threads(2)
    clock, judges = RunClock.start(), load_judges()
    scenes = [scene for scene in demo.SCENES for _ in demo.SEEDS]
    lines = [
        (
            f"The demo's run ({args.steps} steps, seed 0, builtin:mini-sdxl) with one choice changed per row; 8 pictures per variant "
            f"({len(demo.SCENES)} scenes x {len(demo.SEEDS)} seeds), scored by the world's judges against the 6 photos."
        ),
        "",
        "| variant | instance similarity | base model | scene recognised | training seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    baseline = colour_baseline(demo.SCENES, demo.SEEDS)
    found = sum(found["scene"] == scene for found, scene in zip(judges.classify(baseline), scenes))
    similarity = instance_similarity(judges, baseline, demo.training_photos())
    lines.append(f"| no training: base model, `a photo of a teal robot <scene>` | {similarity:.3f} | - | {found}/{len(baseline)} | 0 |")
    print(lines[-1], flush=True)
    rows = [baseline]
    with tempfile.TemporaryDirectory() as scratch:
        class_dir = demo.write_class_images(Path(scratch), demo.DEFAULT_MODEL)
        for name in args.variant or list(VARIANTS):
            output_dir = Path(scratch) / f"run{len(rows) - 1}"
            started = time.perf_counter()
            train(TrainConfig(**variant_options(output_dir, class_dir, args.steps, **VARIANTS[name])))
            seconds = time.perf_counter() - started
            compared = demo.compare(output_dir, model=demo.DEFAULT_MODEL)
            base, adapter = demo.similarity_scores(compared)
            pictures = [image for row in compared for image in row.adapter]
            recognised = sum(found["scene"] == scene for found, scene in zip(judges.classify(pictures), scenes))
            rows.append(pictures)
            lines.append(f"| {name} | {adapter:.3f} | {base:.3f} | {recognised}/{len(pictures)} | {seconds:.0f} |")
            print(lines[-1], flush=True)
    if args.grid:
        save_picture_rows(rows, args.grid)
    publish("\n".join(lines) + "\n", args.markdown, "demo_recipes", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
