"""Seconds per step of builtin:mini-sdxl's UNet pretraining, float32 against ``--mixed_precision bf16``.

Each repeat runs the real UNet stage (``dash_diffusion.models.mini.pretrain.train_unet``) for ``--steps``
steps from the shipped weights, once in float32 and once under bfloat16 autocast, one right after the
other (the order alternates between repeats), each on a fresh copy of the models and its own work folder.
A run's time includes the stage's one checkpoint at its last step, the same for both. Reported: the
median seconds per step of each precision and the median and range of the in-repeat ratios (bf16 /
float32; below 1 is faster), and how far bfloat16 moves the UNet's prediction on one batch of the world:
``||p_bf16 - p_fp32|| / ||p_fp32||`` (v-prediction, 16 random timesteps of the batch).

    python benchmarks/mini_pretrain_step.py --markdown docs/benchmarks.md            # CPU
    python benchmarks/mini_pretrain_step.py --device cuda --batch 256 --steps 40     # a GPU
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in (HERE, ROOT):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from provenance import RunClock, publish  # noqa: E402

from dash_diffusion.models.mini import pretrain as mini  # noqa: E402
from dash_diffusion.models.mini.devices import MIXED_PRECISION, forward_precision, resolve_device  # noqa: E402

def load_pipeline(device: torch.device):
    """The shipped mini-sdxl, float32, trainable, on ``device``."""
    from dash_diffusion.models.builtin import resolve_model_path

    pipeline = mini.initial_pipeline(mini.PretrainConfig(init_from=str(resolve_model_path("builtin:mini-sdxl"))))
    for model in (pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
        model.to(device)
    return pipeline


def timed_run(pipeline, data: dict, args: argparse.Namespace, precision: str, work: Path) -> float:
    """Seconds per step of ``args.steps`` UNet-stage steps on a fresh copy of ``pipeline``'s models."""
    shared = {name: getattr(pipeline, name) for name in ("vae", "tokenizer", "tokenizer_2", "scheduler")}
    fresh = types.SimpleNamespace(**shared, **{name: copy.deepcopy(getattr(pipeline, name)) for name in ("unet", "text_encoder", "text_encoder_2")})
    ema = copy.deepcopy(fresh.unet).requires_grad_(False)
    config = mini.PretrainConfig(unet_steps=args.steps, unet_batch=args.batch, checkpoint_every=args.steps, warmup_steps=0, images=args.images, mixed_precision=precision)
    steps, seconds = mini.train_unet(fresh, ema, data, config, work)
    return seconds / steps


@torch.no_grad()
def prediction_drift(pipeline, data: dict, device: torch.device) -> float:
    """``||p_bf16 - p_fp32|| / ||p_fp32||`` of the UNet's prediction on one batch of cached latents."""
    generator = torch.Generator().manual_seed(0)
    count = min(16, len(data["captions"]))
    latents = (data["mean"][:count].float() * pipeline.vae.config.scaling_factor).to(device)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    timesteps = torch.randint(0, 1000, (count,), generator=generator).to(device)
    tokens = [tok(data["captions"][:count], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids.to(device) for tok in (pipeline.tokenizer, pipeline.tokenizer_2)]
    time_ids = mini.size_time_ids(device).expand(count, -1)
    noisy = pipeline.scheduler.add_noise(latents, noise, timesteps)
    predictions = []
    for precision in MIXED_PRECISION:
        with forward_precision(device, precision):
            embeds, pooled = mini.encode_text(pipeline, tokens)
            predictions.append(pipeline.unet(noisy, timesteps, encoder_hidden_states=embeds, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample.float())
    return float((predictions[1] - predictions[0]).norm() / predictions[0].norm())


def format_table(args: argparse.Namespace, device: torch.device, times: dict[str, list[float]], drift: float) -> str:
    ratios = [b / f for f, b in zip(times["no"], times["bf16"])]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    lines = [
        f"builtin:mini-sdxl's UNet stage from the shipped weights on {where}: batch {args.batch} of 16 x 16 x 16 latents, "
        f"{args.steps} steps per run, {args.repeats} repeats of a float32 and a bf16 run back to back (order alternating); "
        "seconds per step: median over repeats. The ratio is bf16 / float32 within a repeat.",
        "",
        "| precision | s / step | ratio to float32 (median) | ratio (range over repeats) |",
        "|---|---:|---:|---:|",
        f"| float32 (`--mixed_precision no`) | {statistics.median(times['no']):.3f} | 1 | |",
        f"| bfloat16 autocast (`--mixed_precision bf16`) | {statistics.median(times['bf16']):.3f} | {statistics.median(ratios):.3f} | {min(ratios):.3f} - {max(ratios):.3f} |",
        "",
        f"bfloat16 moves the UNet's prediction by {drift:.4f} of its norm (16 cached scenes, random timesteps).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:index] (default auto)")
    parser.add_argument("--batch", type=int, default=32, help="UNet batch (default 32, the CPU pretraining's)")
    parser.add_argument("--steps", type=int, default=12, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--images", type=int, default=64, help="scenes encoded for the latent cache")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.batch < 1 or args.images < 1:
        parser.error("--steps, --repeats, --batch and --images must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    clock = RunClock.start()
    pipeline = load_pipeline(device)
    times: dict[str, list[float]] = {precision: [] for precision in MIXED_PRECISION}
    with tempfile.TemporaryDirectory() as tmp:
        data = mini.encode_dataset(pipeline.vae, mini.PretrainConfig(images=args.images), Path(tmp))
        drift = prediction_drift(pipeline, data, device)
        for repeat in range(args.repeats):
            order = MIXED_PRECISION if repeat % 2 == 0 else MIXED_PRECISION[::-1]
            for precision in order:
                times[precision].append(timed_run(pipeline, data, args, precision, Path(tmp) / f"{repeat}-{precision}"))
            print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(f"{p} {times[p][-1]:.3f} s/step" for p in MIXED_PRECISION), flush=True)
    publish(format_table(args, device, times, drift), args.markdown, "mini_pretrain_step", clock, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
