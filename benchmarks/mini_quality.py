"""How well ``builtin:mini-sdxl`` draws what it is asked for: the world's judges classify images generated
for prompts of held-out (object, colour, scene) combinations, which pretraining never showed together.

    python benchmarks/mini_quality.py --markdown docs/benchmarks.md

For each prompt ``a photo of a <colour> <object> <scene phrase>`` one image is generated (its own seed)
and the judges (:mod:`dash_diffusion.models.world_judges`) name its object, scene and colour; the table
gives the share they got right, for held-out prompts and, as a reference, for as many prompts of the
training split. Two more rows give the judges' own accuracy on rendered (not generated) pictures of the
same combinations: the ceiling the generated images are measured against.
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

from dash_diffusion.models.world import HELDOUT, Scene, class_prompt, render, sample_scene  # noqa: E402

ATTRIBUTES = ("object", "scene", "colour")
TARGETS = {"object": 0.80, "scene": 0.80, "colour": 0.70}


def heldout_combos(count: int, seed: int) -> list[tuple[str, str, str]]:
    """``count`` held-out (object, colour, scene) combinations, a fixed random pick of them."""
    ordered = sorted(HELDOUT)
    if count > len(ordered):
        raise SystemExit(f"error: only {len(ordered)} held-out combinations exist; ask for --prompts {len(ordered)} or fewer")
    return [ordered[i] for i in np.random.default_rng([seed, 7]).permutation(len(ordered))[:count]]


def train_combos(count: int, seed: int) -> list[tuple[str, str, str]]:
    """``count`` combinations drawn as the pretraining data was (split "train")."""
    rng = np.random.default_rng([seed, 8])
    return [(s.object, s.colour, s.scene) for s in (sample_scene(rng, "train") for _ in range(count))]


def generate(pipe, combos: list[tuple[str, str, str]], steps: int, guidance: float, seed: int, batch: int = 10) -> list:
    """One image per combination, image ``i`` from a CPU generator seeded ``seed + i``."""
    images = []
    for start in range(0, len(combos), batch):
        chunk = combos[start : start + batch]
        prompts = [class_prompt(obj, scene, colour) for obj, colour, scene in chunk]
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        images += pipe(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generators).images
        print(f"generated {len(images)}/{len(combos)}", flush=True)
    return images


def renders(combos: list[tuple[str, str, str]], seed: int) -> list:
    """A rendered picture of each combination (random placement and lighting), at the model's size."""
    rng = np.random.default_rng([seed, 9])
    pictures = []
    for obj, colour, scene in combos:
        drawn = sample_scene(rng, "train")  # only for a random placement; the combination is replaced
        pictures.append(render(Scene(obj, colour, scene, size=drawn.size, x=drawn.x, ground=drawn.ground, turn=drawn.turn, tilt=drawn.tilt, brightness=drawn.brightness, warmth=drawn.warmth, backdrop=drawn.backdrop, variant=drawn.variant), 128))
    return pictures


def accuracy(judges, images: list, combos: list[tuple[str, str, str]]) -> dict[str, float]:
    """Share of images whose judged object, scene and colour (and all three) match the prompt."""
    verdicts = judges.classify(images)
    truth = [dict(object=obj, colour=colour, scene=scene) for obj, colour, scene in combos]
    result = {name: float(np.mean([v[name] == t[name] for v, t in zip(verdicts, truth)])) for name in ATTRIBUTES}
    result["all"] = float(np.mean([all(v[n] == t[n] for n in ATTRIBUTES) for v, t in zip(verdicts, truth)]))
    return result


def format_table(rows: list[tuple[str, dict[str, float]]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.prompts} prompts per row, one image each, {args.steps} Euler steps, guidance {args.guidance}, 128 x 128.",
        "Targets for held-out prompts: object >= 80%, scene >= 80%, colour >= 70%.",
        "",
        "| images | object | scene | colour | all three |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, result in rows:
        lines.append(f"| {label} | " + " | ".join(f"{100 * result[k]:.0f}%" for k in (*ATTRIBUTES, "all")) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:mini-sdxl")
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save_images", type=Path, default=None, help="folder to keep the generated images in")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    from diffusers import StableDiffusionXLPipeline

    from dash_diffusion.models.builtin import resolve_model_path
    from dash_diffusion.models.world_judges import load_judges

    clock = RunClock.start()
    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path(args.model))
    pipe.set_progress_bar_config(disable=True)
    judges = load_judges()
    rows = []
    for split, combos in (("held-out", heldout_combos(args.prompts, args.seed)), ("training split", train_combos(args.prompts, args.seed))):
        images = generate(pipe, combos, args.steps, args.guidance, args.seed)
        if args.save_images:
            folder = args.save_images / split.replace(" ", "-")
            folder.mkdir(parents=True, exist_ok=True)
            for index, (image, (obj, colour, scene)) in enumerate(zip(images, combos)):
                image.save(folder / f"{index:03d}-{colour}-{obj}-{scene}.png")
        rows.append((f"generated, {split} prompts", accuracy(judges, images, combos)))
        rows.append((f"rendered, {split} combinations (judges' ceiling)", accuracy(judges, renders(combos, args.seed), combos)))
    held = rows[0][1]
    verdict = ", ".join(f"{name} {'meets' if held[name] >= target else 'misses'} {100 * target:.0f}%" for name, target in TARGETS.items())
    publish(format_table(rows, args) + f"\nHeld-out prompts: {verdict}.\n", args.markdown, "mini_quality", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
