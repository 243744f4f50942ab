"""Whether builtin:mini-sdxl's VAE keeps the demo robot's star: the star photos against the same photos
with a round emblem, through encode and decode.

    git show 65ba897:samples/draw_samples.py > /tmp/thin_lines_draw_samples.py
    python benchmarks/sample_emblem.py --draw_samples /tmp/thin_lines_draw_samples.py \\
        --draw_samples samples/draw_samples.py --markdown docs/benchmarks.md

Each ``--draw_samples`` is a version of the sample drawing script. Its six shots are drawn twice: as they
are, and with the star swapped for a disc of the star's mean radius (the script's ``_star`` replaced), then
resized and centre-cropped to 128 px by the trainer's own code. For each photo pair ``x_star, x_round`` the
table gives the share of their difference that survives

* encoding: ``|E(x_star) - E(x_round)| / |x_star - x_round|`` (posterior means, pixels in [-1, 1]);
* the round trip: ``|D(E(x_star)) - D(E(x_round))| / |x_star - x_round|``;

averaged over the six photos, and the round trip's mean absolute error on the star photos. A VAE that
decodes the star photo and the round one alike (a share near 0) cannot show the star, whatever the UNet
learns.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from provenance import RunClock, publish  # noqa: E402


def load_drawing(path: Path) -> ModuleType:
    """A sample drawing script (``samples/draw_samples.py`` or an older version of it) as a module."""
    spec = importlib.util.spec_from_file_location(f"draw_samples_{abs(hash(str(path)))}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--draw_samples {path} is not a Python file: pass a version of samples/draw_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def round_emblem(cx: float, cy: float, outer: float, inner: float, squash: float) -> list[tuple[float, float]]:
    """A disc (24-gon) of radius ``(outer + inner) / 2`` where the script draws its star, squashed alike."""
    radius = (outer + inner) / 2
    return [(cx + radius * math.cos(2 * math.pi * k / 24) * squash, cy + radius * math.sin(2 * math.pi * k / 24)) for k in range(24)]


def photo_pairs(drawing: ModuleType, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """``(star photos, round-emblem photos)`` as (6, 3, size, size) tensors in [-1, 1]."""
    import random

    from dash_diffusion.data.buckets import resize_and_crop
    from dash_diffusion.models.mini.pretrain import to_tensor

    def shots() -> torch.Tensor:
        pictures = [drawing.render(shot).convert("RGB") for shot in drawing.SHOTS]
        return to_tensor([resize_and_crop(picture, (size, size), True, random.Random(0))[0] for picture in pictures])

    star = shots()
    drawn_star, drawing._star = drawing._star, round_emblem
    try:
        disc = shots()
    finally:
        drawing._star = drawn_star
    return star, disc


@torch.no_grad()
def emblem_shares(vae, star: torch.Tensor, disc: torch.Tensor) -> dict[str, float]:
    """Mean shares of the star-vs-disc difference kept by encoding and by the round trip, and the star
    photos' round-trip mean absolute error (see the module docstring)."""
    latents = [vae.encode(pixels).latent_dist.mean for pixels in (star, disc)]
    decoded = [vae.decode(latent).sample.clamp(-1, 1) for latent in latents]
    apart = (star - disc).flatten(1).norm(dim=1)
    return {
        "encoded": float(((latents[0] - latents[1]).flatten(1).norm(dim=1) / apart).mean()),
        "decoded": float(((decoded[0] - decoded[1]).flatten(1).norm(dim=1) / apart).mean()),
        "mae": float((decoded[0] - star).abs().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draw_samples", type=Path, action="append", default=None, help="a version of samples/draw_samples.py (repeatable)")
    parser.add_argument("--model", default="builtin:mini-sdxl")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    from diffusers import AutoencoderKL

    from dash_diffusion.models.builtin import resolve_model_path

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    clock = RunClock.start()
    vae = AutoencoderKL.from_pretrained(resolve_model_path(args.model), subfolder="vae").float().eval()
    lines = [
        f"The 6 sample shots, each drawn with its star and with a disc in its place, 128 px, through {args.model}'s VAE (posterior mean).",
        "",
        "| drawing script | star vs disc kept by encoding | kept by encode + decode | round-trip MAE, star photos |",
        "| --- | ---: | ---: | ---: |",
    ]
    for path in args.draw_samples or [ROOT / "samples" / "draw_samples.py"]:
        shares = emblem_shares(vae, *photo_pairs(load_drawing(path)))
        lines.append(f"| {path} | {shares['encoded']:.2f} | {shares['decoded']:.2f} | {shares['mae']:.3f} |")
        print(lines[-1], flush=True)
    publish("\n".join(lines) + "\n", args.markdown, "sample_emblem", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
