"""Time per optimizer step of the real trainer on the built-in tiny SDXL (CPU): ``--no_dash`` vs LoRA-Dash.

Each pair runs ``dash_diffusion.training.train.train`` twice *at the same time*, as two worker processes with one
torch thread each, pinned to different CPU cores: one ``--no_dash`` run and one LoRA-Dash run with the
same seed, data and settings. Both read their per-step wall times from ``logs/steps.jsonl``. The cores
swap between pairs. On a shared VM the speed drifts by tens of percent within seconds; two runs that
share the same seconds see the same drift, so the in-pair ratio is far steadier than one of runs made
one after the other.

Steps 1..t of a LoRA-Dash run are its pre-launch phase (plain LoRA with the s direction columns still
zero), steps t+1.. its dash phase; each is compared with the same steps of the plain run. The first
``--skip`` steps of each phase (warm-up, and the switch step itself) are left out. Reported: per phase,
the median over pairs of each run's median step time and the median and range of the in-pair ratios.

    python benchmarks/train_step.py --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from provenance import RunClock, publish  # noqa: E402


def worker(args: argparse.Namespace) -> int:
    """One training run on one pinned core with one thread (called in a subprocess)."""
    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    logging.disable(logging.INFO)
    from dash_diffusion.training.train import train
    from dash_diffusion.training.train_config import TrainConfig

    train(TrainConfig(
        pretrained_model_name_or_path="builtin:tiny-sdxl", instance_dir=str(ROOT / "samples" / "robot"),
        resolution=args.resolution, rank=args.rank, dash_directions=args.directions, dash_warmup_steps=args.warmup,
        max_train_steps=args.steps, checkpointing_steps=10 * args.steps, no_dash=args.worker == "plain", output_dir=str(args.output), seed=0,
    ))
    return 0


def phase_medians(output: Path, args: argparse.Namespace) -> dict[str, float]:
    """Median ms per step of the pre-launch and dash-phase steps of one finished run."""
    records = [json.loads(line) for line in (output / "logs" / "steps.jsonl").read_text().splitlines()]
    pre = [r["seconds"] for r in records if args.skip < r["step"] <= args.warmup]
    post = [r["seconds"] for r in records if r["step"] > args.warmup + args.skip]
    return {"pre": statistics.median(pre) * 1000, "post": statistics.median(post) * 1000}


def run_pair(args: argparse.Namespace, cores: tuple[int, int], workdir: Path) -> dict[str, float]:
    """Start the plain and the LoRA-Dash run together on ``cores``; wait for both."""
    common = [sys.executable, __file__, "--resolution", str(args.resolution), "--rank", str(args.rank), "--directions", str(args.directions),
              "--warmup", str(args.warmup), "--steps", str(args.steps)]
    processes = {}
    for variant, core in zip(("plain", "dash"), cores):
        output = workdir / variant
        command = common + ["--worker", variant, "--core", str(core), "--output", str(output)]
        processes[variant] = (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), output)
    medians = {}
    for variant, (process, output) in processes.items():
        _, errors = process.communicate()
        if process.returncode:
            raise SystemExit(f"error: the {variant} worker failed:\n{errors[-2000:]}")
        for phase, value in phase_medians(output, args).items():
            medians[f"{variant}:{phase}"] = value
    return medians


def format_table(args: argparse.Namespace, pairs: list[dict[str, float]]) -> str:
    """Markdown: per phase, the median over pairs of each variant's step time and of the in-pair ratio."""

    def row(label: str, phase: str) -> str:
        plain = [pair[f"plain:{phase}"] for pair in pairs]
        dash = [pair[f"dash:{phase}"] for pair in pairs]
        ratios = [d / p for d, p in zip(dash, plain)]
        return f"| {label} | {statistics.median(plain):.1f} | {statistics.median(dash):.1f} | {statistics.median(ratios):.3f} | {min(ratios):.3f} - {max(ratios):.3f} |"

    return "\n".join([
        f"Tiny SDXL on the CPU (torch {torch.__version__}), resolution {args.resolution}, batch 1, rank {args.rank}, s = {args.directions}, t = {args.warmup}, "
        f"{args.steps} steps per run; {len(pairs)} pairs of concurrent runs, one thread and one pinned core each, cores swapped between pairs. "
        f"ms per optimizer step: median over a run's steps (first {args.skip} of each phase left out), then median over pairs. "
        "The ratio is LoRA-Dash / plain within a pair.",
        "",
        "| steps | plain LoRA (`--no_dash`) ms | LoRA-Dash ms | ratio (median) | ratio (range over pairs) |",
        "|---|---:|---:|---:|---:|",
        row("1..t (pre-launch)", "pre"),
        row("t+1.. (dash phase)", "post"),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=8, help="pairs of concurrent runs (plain, dash)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=30, help="t, the LoRA-Dash pre-launch steps")
    parser.add_argument("--skip", type=int, default=5, help="first steps of each phase left out")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--directions", type=int, default=8)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--worker", choices=("plain", "dash"), help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("error: this benchmark runs two pinned workers at once and needs at least 2 CPU cores")
    clock = RunClock.start()
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = (cores[0], cores[1]) if repeat % 2 == 0 else (cores[1], cores[0])
            pairs.append(run_pair(args, order, Path(tmp) / str(repeat)))
            print(f"pair {repeat + 1}/{args.repeats}: " + ", ".join(f"{key} {value:.1f} ms" for key, value in pairs[-1].items()), flush=True)
    table = format_table(args, pairs)
    publish(table, args.markdown, "train_step", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
