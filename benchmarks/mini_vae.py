"""How faithfully a mini-sdxl VAE reconstructs pictures: the ceiling of everything the model generates.

    python benchmarks/mini_vae.py --model builtin:mini-sdxl --model /tmp/previous-mini --markdown docs/benchmarks.md

For every ``--model`` (a built-in name or a pipeline folder) the VAE encodes and decodes (posterior
mean) rendered scenes that pretraining never drew (their own seed, every class) and the six pictures of
``samples/robot`` (resized and centre-cropped to 128 px as the trainer does for the demo). The table gives the mean
absolute error on [-1, 1] pixels, how often the world's judges name the same colour and the same
object in the reconstruction as in the original render (the colour a generated picture can show at best),
and how much of the sample robot's identity survives: the mean cosine between the judges' instance
embeddings of each photo and of its own reconstruction (1 = the same robot; a render of the subject against
another render of it scores about 0.9, the same robot with another chest emblem about 0.57).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from provenance import RunClock, publish  # noqa: E402

from dash_diffusion.models.world import render, sample_scene  # noqa: E402


def sample_photos() -> list:
    """The demo's training photos at 128 px, resized and centre-cropped by the trainer's own code."""
    import random

    from PIL import Image

    from dash_diffusion.data.buckets import resize_and_crop

    paths = sorted((ROOT / "samples" / "robot").glob("*.png"))
    return [resize_and_crop(Image.open(path).convert("RGB"), (128, 128), True, random.Random(0))[0] for path in paths]


def reconstruct(vae, images: list, batch: int = 16) -> tuple[list, float]:
    """``(reconstructed PIL images, mean absolute error on [-1, 1] pixels)``."""
    from PIL import Image

    from dash_diffusion.models.mini.pretrain import to_tensor

    pictures, errors = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            pixels = to_tensor(images[start : start + batch])
            output = vae.decode(vae.encode(pixels).latent_dist.mean).sample.clamp(-1, 1)
            errors.append((output - pixels).abs().mean(dim=(1, 2, 3)))
            array = ((output + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            pictures += [Image.fromarray(item) for item in array]
    return pictures, float(torch.cat(errors).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, help="built-in name or pipeline folder (repeatable; default builtin:mini-sdxl)")
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    from diffusers import AutoencoderKL

    from dash_diffusion.models.builtin import resolve_model_path
    from dash_diffusion.models.world_judges import load_judges

    clock = RunClock.start()
    rng = np.random.default_rng([args.seed, 11])
    scenes = [sample_scene(rng, "train") for _ in range(args.renders)]
    renders, photos = [render(scene, 128) for scene in scenes], sample_photos()
    judges = load_judges()
    truth = judges.classify(renders)
    lines = [
        f"{args.renders} rendered training-split scenes (seed {args.seed}, never drawn in pretraining) and the 6 photos of samples/robot, 128 x 128; posterior mean.",
        "Agreement: the judges name the same colour / object in the reconstruction as in the render.",
        "",
        "| VAE | widths | GroupNorm groups | MAE, renders | MAE, sample photos | colour agreement | object agreement | subject kept, photos |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.model or ["builtin:mini-sdxl"]:
        vae = AutoencoderKL.from_pretrained(resolve_model_path(name), subfolder="vae").float().eval()
        pictures, render_error = reconstruct(vae, renders)
        photo_pictures, photo_error = reconstruct(vae, photos)
        verdicts = judges.classify(pictures)
        colour = np.mean([v["colour"] == t["colour"] for v, t in zip(verdicts, truth)])
        shape = np.mean([v["object"] == t["object"] for v, t in zip(verdicts, truth)])
        kept = float((judges.embed(photo_pictures) * judges.embed(photos)).sum(dim=1).mean())
        widths = "/".join(str(width) for width in vae.config.block_out_channels)
        lines.append(f"| {name} | {widths} | {vae.config.norm_num_groups} | {render_error:.3f} | {photo_error:.3f} | {100 * colour:.0f}% | {100 * shape:.0f}% | {kept:.2f} |")
        print(lines[-1], flush=True)
    publish("\n".join(lines) + "\n", args.markdown, "mini_vae", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
