"""Time per optimizer step of the real trainer on the built-in tiny SDXL (CPU): ``--no_dash`` vs LoRA-Dash.

Runs ``dash_diffusion.train.train`` in-process, alternating plain-LoRA and LoRA-Dash runs with the same
seed, data and settings, and reads the per-step wall times the trainer writes to
``logs/steps.jsonl``. Steps 1..t of a LoRA-Dash run are its pre-launch phase, steps t+1.. its dash phase;
each is compared with the same steps of the plain run. The first steps of every run (warm-up of the
allocator and kernels) are left out. Ratios come from medians measured in the same process.

    python benchmarks/train_step.py --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dash_diffusion.train import train  # noqa: E402
from dash_diffusion.train_config import TrainConfig  # noqa: E402
from markdown_section import replace_section  # noqa: E402


def run_once(no_dash: bool, args: argparse.Namespace, workdir: Path) -> list[dict]:
    output = workdir / ("lora" if no_dash else "dash") / str(time.perf_counter_ns())
    config = TrainConfig(
        pretrained_model_name_or_path="builtin:tiny-sdxl", instance_dir=str(ROOT / "samples" / "robot"),
        resolution=args.resolution, rank=args.rank, dash_directions=args.directions, dash_warmup_steps=args.warmup,
        max_train_steps=args.steps, checkpointing_steps=10 * args.steps, no_dash=no_dash, output_dir=str(output), seed=0,
    )
    train(config)
    return [json.loads(line) for line in (output / "logs" / "steps.jsonl").read_text().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs (plain, dash) interleaved")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=30, help="t, the LoRA-Dash pre-launch steps")
    parser.add_argument("--skip", type=int, default=5, help="first steps of each phase left out")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--directions", type=int, default=8)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    times: dict[str, list[float]] = {"plain:pre": [], "plain:post": [], "dash:pre": [], "dash:post": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for no_dash in (True, False):
                kind = "plain" if no_dash else "dash"
                for record in run_once(no_dash, args, Path(tmp)):
                    step = record["step"]
                    if args.skip < step <= args.warmup:
                        times[f"{kind}:pre"].append(record["seconds"])
                    elif step > args.warmup + args.skip:
                        times[f"{kind}:post"].append(record["seconds"])
    median = {key: statistics.median(values) * 1000 for key, values in times.items()}
    table = "\n".join([
        f"Tiny SDXL, CPU ({torch.get_num_threads()} threads, torch {torch.__version__}), resolution {args.resolution}, batch 1, rank {args.rank}, s = {args.directions}, t = {args.warmup}, {args.steps} steps per run, {args.repeats} interleaved run pairs; median ms per optimizer step (first {args.skip} steps of each phase left out).",
        "",
        "| steps | plain LoRA (`--no_dash`) | LoRA-Dash | ratio |",
        "|---|---|---|---|",
        f"| 1..t (pre-launch) | {median['plain:pre']:.1f} | {median['dash:pre']:.1f} | {median['dash:pre'] / median['plain:pre']:.3f} |",
        f"| t+1.. (dash phase) | {median['plain:post']:.1f} | {median['dash:post']:.1f} | {median['dash:post'] / median['plain:post']:.3f} |",
    ])
    print(table)
    if args.markdown:
        command = "python benchmarks/train_step.py " + " ".join(sys.argv[1:])
        replace_section(args.markdown, "train_step", f"Command: `{command}`\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
