"""How much of an object's detail a mini-sdxl UNet keeps when it re-draws a picture from partial noise.

    python benchmarks/mini_detail.py --markdown docs/benchmarks.md --grid docs/images/mini_detail.png

A text-to-image sample has to invent every detail; img2img at strength ``s`` (diffusers'
``StableDiffusionXLImg2ImgPipeline``, the same components) starts from the picture's latent noised to
``t = s * 1000`` and only re-draws what that noise hid, so it isolates how well the UNet denoises the fine
structure of an object it is shown (faces, emblems, arms) from how well it composes a scene. For every
object class, ``--count`` training-split renders of that class are:

* encoded and decoded by the VAE (the ceiling: what any UNet output can show through this decoder);
* re-drawn by img2img at each ``--strength`` with their own caption (``a photo of a red robot in the
  snow``), 25 Euler steps, guidance 5, a fixed seed.

Each result is scored against its original by the world's instance judge (cosine of the two instance
embeddings, 1 = the same instance) and by the mean absolute pixel error in [0, 1]. The six photos of
``samples/robot`` get the same treatment with ``a photo of a teal robot``: whether the base UNet keeps the
demo subject's face and star when it is handed them, which bounds what an adapter on it can show.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from mini_vae import reconstruct, sample_photos
from picture_rows import save_picture_rows
from provenance import RunClock, publish

STEPS = 25
GUIDANCE = 5.0
SEED = 0


def paired_scores(judges, pictures: list, originals: list) -> tuple[float, float]:
    """Mean instance-embedding cosine and mean absolute pixel error (0-1) of each picture to its original."""
    import numpy as np

    cosine = float((judges.embed(pictures) * judges.embed(originals)).sum(dim=-1).mean())
    error = float(np.mean([np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean() / 255.0 for a, b in zip(pictures, originals)]))
    return cosine, error


def redraw(img2img, pictures: list, prompts: list[str], strength: float) -> list:
    """img2img of each picture with its prompt at ``strength``, seed :data:`SEED`."""
    return [
        img2img(prompt, image=picture, strength=strength, num_inference_steps=STEPS, guidance_scale=GUIDANCE, generator=torch.Generator().manual_seed(SEED)).images[0]
        for picture, prompt in zip(pictures, prompts)
    ]


def subjects(count: int, seed: int) -> dict[str, tuple[list, list[str]]]:
    """Row name -> (pictures, prompts): ``count`` renders of every class, then the sample photos."""
    from dash_diffusion.models.world import CLASSES, caption, render
    from dash_diffusion.models.world.dataset import class_scenes

    rows = {}
    for name in CLASSES:
        scenes = class_scenes(name, count, seed)
        rows[name] = ([render(scene, 128) for scene in scenes], [caption(scene) for scene in scenes])
    photos = sample_photos()
    rows["samples/robot photos"] = (photos, ["a photo of a teal robot"] * len(photos))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:mini-sdxl", help="built-in name or pipeline folder")
    parser.add_argument("--count", type=int, default=8, help="renders per class")
    parser.add_argument("--seed", type=int, default=3, help="which training-split renders")
    parser.add_argument("--strength", type=float, action="append", default=None, help="img2img strengths (repeatable; default 0.3 and 0.6)")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--grid", type=Path, default=None, help="robots and sample photos: originals, VAE round trip, then each strength")
    args = parser.parse_args(argv)
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    from dash_diffusion.models.builtin import resolve_model_path
    from dash_diffusion.models.world_judges import load_judges

    torch.set_num_threads(2)
    clock, judges = RunClock.start(), load_judges()
    strengths = args.strength or [0.3, 0.6]
    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path(args.model))
    img2img = StableDiffusionXLImg2ImgPipeline(**pipe.components)
    img2img.set_progress_bar_config(disable=True)
    header = " | ".join(f"img2img {s:g}: cosine / error" for s in strengths)
    lines = [
        f"{args.count} training-split renders per class (seed {args.seed}) and the 6 sample photos; img2img with {STEPS} Euler steps, guidance {GUIDANCE}, seed {SEED}.",
        "Cosine: the instance judge's embedding of the result against the original's (1 = the same instance). Error: mean absolute pixel error in [0, 1].",
        "",
        f"| pictures | VAE round trip: cosine / error | {header} |",
        "| --- | ---: | " + " | ".join("---:" for _ in strengths) + " |",
    ]
    grid = []
    for name, (pictures, prompts) in subjects(args.count, args.seed).items():
        results = [reconstruct(pipe.vae, pictures)[0]] + [redraw(img2img, pictures, prompts, s) for s in strengths]
        cells = [f"{c:.3f} / {e:.3f}" for c, e in (paired_scores(judges, result, pictures) for result in results)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
        if "robot" in name:
            grid += [pictures, *results]
    if args.grid:
        save_picture_rows(grid, args.grid)
    publish("\n".join(lines) + "\n", args.markdown, "mini_detail", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
