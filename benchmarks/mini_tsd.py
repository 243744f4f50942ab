"""The paper's task-specific-direction (TSD) claims on real DreamBooth runs of the built-in SDXL models.

The controlled matrix problem of ``tsd_study.py`` builds its TSD in; here nothing is built in. On
``samples/robot`` (the demo subject, the demo's recipe from ``dash_diffusion.demo.training_options``
without its prior preservation, at rank 4; 128 px on mini-sdxl, 64 px on tiny-sdxl) the project's own
trainer runs, per model and seed:

- one long plain-LoRA run (``--steps`` optimizer steps, ``--no_dash``): its final ``dW = (alpha/r) B A``
  gives each layer's final change rates ``c_i = |u_i^T dW v_i| / sigma_i``;
- one LoRA-Dash run per ``t`` in ``--warmups`` (r = 4, s = 8, same seed and length): the directions
  it selected at step ``t`` (from the native adapter file) are the prediction. Up to step ``t`` a Dash run
  and the plain run with the same seed are the same computation, so these are exactly the top-s
  directions of the plain run's ``dW`` after ``t`` steps.

Reported per model (pretrained ``builtin:mini-sdxl`` against random ``builtin:tiny-sdxl``):
(a) where the selected directions sit in each layer's singular-value order (0 = largest, 1 = smallest),
against the top-s of a random rank-r update on the same weight; (b) how few directions carry 50% / 90%
of the final update's change-rate mass and of its Frobenius energy on core directions, against random
updates of the same shape; (c) the overlap ``|predicted n final| / s`` of the directions selected at ``t``
with the final top-s, per layer and across layers, against chance ``s / k``; (d) wall time per run.
The math lives in :mod:`dash_diffusion.lora_dash.tsd_analysis`; the tables in ``mini_tsd_report.py``.

    python benchmarks/mini_tsd.py --markdown docs/benchmarks.md        # the study (both models, 3 seeds)
    python benchmarks/mini_tsd.py --quick                              # a smoke run (mini only, seconds)

Each finished run is saved as ``--out/results/<run>.json`` (atomically) and skipped on a rerun with the
same settings, so an interrupted study resumes where it stopped; the trainer's folders are under
``--out/runs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in (HERE, ROOT):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mini_tsd_report import build_report  # noqa: E402
from provenance import RunClock, publish  # noqa: E402

from dash_diffusion.formats.safetensors_io import atomic_write_text  # noqa: E402
from dash_diffusion.lora_dash import tsd_analysis as tsd  # noqa: E402
from dash_diffusion.lora_dash.directions import batched_svd, usable_directions  # noqa: E402

MODELS = ("builtin:mini-sdxl", "builtin:tiny-sdxl")
QUICK = {"model": ["builtin:mini-sdxl"], "steps": 12, "warmups": [3, 6], "seeds": 1, "max_layers": 8, "out": Path("outputs/mini_tsd_quick")}
FULL = {"model": list(MODELS), "steps": 1000, "warmups": [25, 100], "seeds": 3, "max_layers": None, "out": Path("outputs/mini_tsd")}


@dataclass(frozen=True)
class RunSpec:
    """One training run of the study; everything that changes its result is in :attr:`settings`."""

    model: str
    kind: str  # "lora" (the long plain run) or "dash"
    seed: int
    steps: int
    warmup: int | None  # t of a "dash" run
    rank: int
    directions: int
    max_layers: int | None
    weights: str  # fingerprint of the model's UNet file: results of other weights are not reused

    @property
    def name(self) -> str:
        short = self.model.split(":")[-1].removesuffix("-sdxl")
        kind = "lora" if self.kind == "lora" else f"dash-t{self.warmup}"
        return f"{short}-{kind}-r{self.rank}-s{self.directions}-{self.steps}steps-seed{self.seed}"

    @property
    def settings(self) -> dict[str, Any]:
        return asdict(self)


def weights_fingerprint(model: str) -> str:
    """The first 12 hex digits of the SHA-256 of the model's UNet weights file (the built-in mini-sdxl
    weights are retrained from time to time; the report names the ones it measured)."""
    from dash_diffusion.models.builtin import resolve_model_path

    digest = hashlib.sha256()
    with open(Path(resolve_model_path(model)) / "unet" / "diffusion_pytorch_model.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def run_specs(models: list[str], steps: int, warmups: list[int], seeds: int, rank: int, directions: int, max_layers: int | None) -> list[RunSpec]:
    """The long plain run, then one Dash run per ``t``, for every model and seed."""
    specs = []
    for model in models:
        weights = weights_fingerprint(model)
        for seed in range(seeds):
            specs.append(RunSpec(model, "lora", seed, steps, None, rank, directions, max_layers, weights))
            specs += [RunSpec(model, "dash", seed, steps, t, rank, directions, max_layers, weights) for t in warmups]
    return specs


def train_run(spec: RunSpec, folder: Path) -> dict[str, Any]:
    """Train ``spec`` with the real trainer into a fresh ``folder``; returns its timings. The trainer's
    progress bar and warnings go to ``folder/train.log``."""
    from dash_diffusion.demo import training_options
    from dash_diffusion.training.train import train
    from dash_diffusion.training.train_config import TrainConfig

    if folder.exists():
        shutil.rmtree(folder)  # an interrupted earlier attempt: its wall time would not be a run's
    folder.mkdir(parents=True)
    options = training_options(folder, spec.steps, spec.warmup or 1, spec.model)
    options.update(rank=spec.rank, dash_directions=spec.directions, seed=spec.seed, checkpointing_steps=spec.steps, no_dash=spec.kind == "lora")
    started = time.perf_counter()
    with open(folder / "train.log", "w") as log, contextlib.redirect_stderr(log):
        train(TrainConfig(**options))
    wall = time.perf_counter() - started
    steps = [json.loads(line) for line in (folder / "logs" / "steps.jsonl").read_text().splitlines() if line.strip()]
    return {"wall_seconds": wall, "step_seconds_median": statistics.median(s["seconds"] for s in steps), "step_seconds_total": sum(s["seconds"] for s in steps)}


def rounded(values: torch.Tensor) -> list[float]:
    """float32 values as short JSON numbers (7 significant digits)."""
    return [float(f"{v:.7g}") for v in values.tolist()]


def update_summary(svd, update: torch.Tensor) -> dict[str, Any]:
    """Change rates, diagonal energies and ``||dW||_F^2`` of one update on one weight."""
    return {"rates": rounded(tsd.change_rates(svd, update)), "energy": rounded(tsd.diagonal_energy(svd, update)), "update_fro2": float(update.double().square().sum())}


@torch.no_grad()
def extract(spec: RunSpec, folder: Path) -> dict[str, dict[str, Any]]:
    """Per adapted layer (module order, the first ``max_layers``): what the analysis needs from a run.

    Both kinds: the weight's shape and usable rank ``k_u``. A Dash run: the positions selected at ``t``
    and the change rates they were chosen by. The plain run: its final update's summary
    (:func:`update_summary`) and the same for two references without a task, a random rank-r update and a
    dense random matrix (seeded by run seed and layer)."""
    from diffusers import UNet2DConditionModel

    from dash_diffusion.formats.export import NATIVE_WEIGHT_NAME
    from dash_diffusion.formats.native import load_dash_adapter
    from dash_diffusion.lora_dash.inject import dash_layers
    from dash_diffusion.models.builtin import resolve_model_path

    unet = UNet2DConditionModel.from_pretrained(resolve_model_path(spec.model), subfolder="unet")
    load_dash_adapter(unet, folder / NATIVE_WEIGHT_NAME)
    layers = list(dash_layers(unet).items())[: spec.max_layers]
    svds = batched_svd({name: layer.base_layer.weight for name, layer in layers})
    summary = {}
    for position, (name, layer) in enumerate(layers):
        svd = svds[name]
        entry: dict[str, Any] = {"shape": list(layer.base_layer.weight.shape), "k_usable": int(usable_directions(svd).sum())}
        if spec.kind == "dash":
            entry["indices"] = layer.dash_indices.tolist()
            entry["rates_at_switch"] = rounded(layer.dash_change_rate)
        else:
            out_features, in_features = entry["shape"]
            generator = torch.Generator().manual_seed(1_000_003 * spec.seed + position)
            entry["final"] = update_summary(svd, layer.delta_weight())
            entry["random_rank_r"] = update_summary(svd, tsd.random_update(out_features, in_features, spec.rank, generator))
            entry["random_dense"] = update_summary(svd, tsd.random_update(out_features, in_features, None, generator))
        summary[name] = entry
    return summary


def ensure_result(spec: RunSpec, out: Path) -> dict[str, Any]:
    """The run's saved result, or train, extract and save it (atomically) now."""
    path = out / "results" / f"{spec.name}.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") == spec.settings:
            print(f"  {spec.name}: done before, {saved['timing']['wall_seconds']:.1f} s (skipped)", flush=True)
            return saved | {"reused": True}
    folder = out / "runs" / spec.name
    timing = train_run(spec, folder)
    result = {"settings": spec.settings, "timing": timing, "layers": extract(spec, folder)}
    atomic_write_text(path, json.dumps(result))
    print(f"  {spec.name}: {timing['wall_seconds']:.1f} s ({timing['step_seconds_median']:.3f} s/step median)", flush=True)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", choices=MODELS, default=None, help="built-in models (default: both)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps of every run (default 1000)")
    parser.add_argument("--warmups", type=int, nargs="+", default=None, help="t of the LoRA-Dash runs (default 25 100)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--directions", type=int, default=8, help="s")
    parser.add_argument("--max_layers", type=int, default=None, help="analyse only the first N adapted layers (default all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: mini-sdxl, 12 steps, t = 3 and 6, one seed, 8 layers")
    parser.add_argument("--out", type=Path, default=None, help="results and trainer folders (default outputs/mini_tsd, outputs/mini_tsd_quick with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the report into this file's mini_tsd section")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if any(t < 1 or t >= args.steps for t in args.warmups):
        parser.error(f"every --warmups value must be in 1..{args.steps - 1} (below --steps)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = RunClock.start()
    specs = run_specs(args.model, args.steps, args.warmups, args.seeds, args.rank, args.directions, args.max_layers)
    print(f"mini_tsd: {len(specs)} runs into {args.out}", flush=True)
    results = [ensure_result(spec, args.out) for spec in specs]
    publish(build_report(results, args), args.markdown, "mini_tsd", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
