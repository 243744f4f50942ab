"""Cost of LoRA-Dash against plain LoRA: one layer's forward + backward, and the phase switch.

Part 1 (layer): forward + backward time of one adapted linear layer at SDXL attention shapes, for

* ``textbook``: a minimal LoRA written here, ``base(x) + scale * lora_B(lora_A(x))``;
* ``(a) plain``: :class:`~dash_diffusion.lora_dash.layer.DashLinear` with ``num_directions=0`` (plain LoRA);
* ``(b) dash``: ``DashLinear`` in the dash phase (directions selected, ``dash_delta`` non-zero), whose
  forward is the factored rank-(r+s) form;
* ``(c) dense``: the composition of the reference code, which builds the out x in matrix
  ``U_s diag(delta) V_s^T`` on every forward pass.

The input needs no gradient, the base weight is frozen, the adapter parameters train. All variants of a
shape run in the same process, interleaved (round-robin, the starting variant rotating per repeat)
after a warm-up; the table gives medians and the ratios of medians. CPU runs use float32, CUDA runs
bf16 autocast over a bf16 base layer with float32 adapter weights.

Part 2 (switch): time of :func:`dash_diffusion.lora_dash.inject.select_directions` over every attention projection
(``to_q``, ``to_k``, ``to_v``, ``to_out.0``) of a full-size SDXL UNet with random weights (built on the
``meta`` device, only the projections materialised; see ``sdxl_unet.py``) and random non-zero LoRA
factors. The same call is split into "SVD" (time spent inside the batched SVD generator, stacking
included) and "rest" (change rates, top-s, installing the buffers), by timing that generator.

Run ``python benchmarks/layer_overhead.py --help``; ``--markdown docs/benchmarks.md`` writes the tables
with the command, date and environment into that file, replacing the previous section of the same
device and part.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


from markdown_section import replace_section  # noqa: E402
from provenance import RunClock, busy_cpu_seconds, environment, other_load, provenance_header  # noqa: E402
from sdxl_unet import (  # noqa: E402
    SDXL_UNET_PARAMETERS,
    build_meta_unet,
    linear_names,
    materialize_linears,
    shape_counts,
)

from dash_diffusion.lora_dash import inject as dash_inject  # noqa: E402
from dash_diffusion.lora_dash.config import UNET_TARGET_MODULES, DashConfig  # noqa: E402
from dash_diffusion.lora_dash.layer import DashLinear  # noqa: E402

#: (tokens, in, out) of SDXL attention projections at 1024 px, batch 1: self-attention at the 640 and
#: 1280 channel levels, and to_k / to_v of cross-attention on the 77 x 2048 text embedding.
LAYER_SHAPES: tuple[tuple[int, int, int], ...] = ((4096, 640, 640), (1024, 1280, 1280), (77, 2048, 1280))
VARIANTS: tuple[str, ...] = ("textbook", "plain", "dash", "dense")
VARIANT_TITLES = {
    "textbook": "textbook LoRA",
    "plain": "(a) DashLinear s=0",
    "dash": "(b) DashLinear dash phase",
    "dense": "(c) dense reference",
}
DOC_INTRO = """# Benchmarks

Every number on this page was produced by the command printed beside it, on the machine and with
the library versions listed there; rerunning that command replaces its section. Sections for a device
that no run has been made on say "not measured yet" and contain no numbers.

## LoRA-Dash overhead (`benchmarks/layer_overhead.py`)

* **Layer**: forward + backward time of one adapted linear layer at SDXL attention shapes (batch 1;
  the input needs no gradient, the base weight is frozen, the adapter trains). `textbook` is a
  minimal `base(x) + scale * B(A(x))` LoRA written in the benchmark; (a) is `DashLinear` with
  `num_directions=0`; (b) is `DashLinear` in the dash phase (factored rank-(r+s) forward); (c) is the
  reference code's composition, which builds `U_s diag(delta) V_s^T` (out x in) on every forward.
  Variants run interleaved in one process; times are medians, ratios are ratios of medians.
  Targets: (b)/(a) <= 1.05 and (c)/(b) >= 2.
* **Phase switch**: `select_directions(unet)` over every `to_q`/`to_k`/`to_v`/`to_out.0` of a
  full-size SDXL UNet (random weights and random non-zero LoRA factors), split into the batched SVD and
  the rest (change rates, top-s, installing the directions).

Reading the CPU figures: the measuring machine is a shared 2-core VM whose speed drifts (the same
matmul ran at 40-170 GFLOP/s on one day), so each section records how busy other processes kept the
CPU and a matmul probe before and after. Compare ratios within one table (its variants ran
interleaved), not absolute times across sections. The switch uses random Gaussian weights; LAPACK's
SVD time depends mostly on the shape, little on the values. On CPU, float32 throughout.
"""
PLACEHOLDER = "Not measured yet: no run on a {what} has been made. Fill this section with\n`{command}`."


# ----------------------------------------------------------------------------- layer variants
class TextbookLoRA(nn.Module):
    """The plainest LoRA: ``base(x) + scale * lora_B(lora_A(x))``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scaling = alpha / rank
        factory = {"device": base.weight.device, "dtype": torch.float32}
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, **factory)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(x))


class DenseDash(nn.Module):
    """LoRA-Dash as the reference code composes it: the dense ``U_s diag(delta) V_s^T`` every call."""

    def __init__(self, base: nn.Linear, dash: DashLinear) -> None:
        super().__init__()
        self.base = base
        self.scaling = dash.scaling
        self.lora_A = nn.Linear(dash.in_features, dash.rank, bias=False, device=base.weight.device)
        self.lora_B = nn.Linear(dash.rank, dash.out_features, bias=False, device=base.weight.device)
        with torch.no_grad():
            self.lora_A.weight.copy_(dash.lora_A.weight)
            self.lora_B.weight.copy_(dash.lora_B.weight)
        self.dash_delta = nn.Parameter(dash.dash_delta.detach().clone())
        self.register_buffer("dash_U", dash.dash_U.clone())
        self.register_buffer("dash_V", dash.dash_V.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense = self.dash_U @ torch.diag(self.dash_delta) @ self.dash_V.T  # (out, in), rebuilt every call
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(x)) + F.linear(x, dense)


def build_variants(
    in_features: int, out_features: int, rank: int, directions: int, device: torch.device, seed: int
) -> dict[str, nn.Module]:
    """The four variants around one shared frozen base layer, with non-zero adapter weights."""
    torch.manual_seed(seed)
    base_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    base = nn.Linear(in_features, out_features, device=device, dtype=base_dtype).requires_grad_(False)
    alpha = float(rank)
    textbook = TextbookLoRA(base, rank, alpha)
    plain = DashLinear(base, rank, alpha, num_directions=0)
    dash = DashLinear(base, rank, alpha, num_directions=directions)
    with torch.no_grad():
        for module in (textbook, plain, dash):
            module.lora_B.weight.normal_(std=0.01)
        dash.select_directions()
        dash.dash_delta.normal_(std=0.01)
    if not bool((dash.dash_indices >= 0).all()) or not bool(dash.dash_delta.ne(0).all()):
        raise RuntimeError("the dash-phase layer has no selected directions or a zero delta")
    return {"textbook": textbook, "plain": plain, "dash": dash, "dense": DenseDash(base, dash)}


# ----------------------------------------------------------------------------- timing helpers
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(module: nn.Module, x: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """One forward + backward of ``module`` on ``x`` against a fixed random output gradient."""
    params = [p for p in module.parameters() if p.requires_grad]

    def autocast() -> contextlib.AbstractContextManager:
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    with autocast():
        probe = module(x)
    grad_output = torch.randn_like(probe)

    def step() -> None:
        for p in params:
            p.grad = None
        with autocast():
            y = module(x)
        y.backward(grad_output)

    return step


def time_interleaved(
    steps: dict[str, Callable[[], None]], repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call of every step, round-robin within each repeat, the first variant rotating."""
    names = list(steps)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + repeats):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            steps[name]()
            synchronize(device)
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
    return samples


@dataclass
class LayerResult:
    """Medians (ms) and spreads of one shape."""

    tokens: int
    in_features: int
    out_features: int
    median_ms: dict[str, float]
    iqr_pct: dict[str, float]
    paired_dash_plain: float  # median over repeats of (b)/(a) measured side by side

    def ratio(self, num: str, den: str) -> float:
        return self.median_ms[num] / self.median_ms[den]


def run_layer(args: argparse.Namespace, device: torch.device) -> list[LayerResult]:
    results = []
    for tokens, in_features, out_features in LAYER_SHAPES:
        variants = build_variants(in_features, out_features, args.rank, args.directions, device, args.seed)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        x = torch.randn(1, tokens, in_features, device=device, dtype=dtype)
        steps = {name: make_step(module, x, device) for name, module in variants.items()}
        begin, cpu_before = time.perf_counter(), busy_cpu_seconds()
        samples = time_interleaved(steps, args.repeats, args.warmup, device)
        load = other_load(cpu_before, busy_cpu_seconds(), time.perf_counter() - begin)
        median = {n: 1e3 * statistics.median(s) for n, s in samples.items()}
        iqr = {}
        for n, s in samples.items():
            q1, _, q3 = statistics.quantiles(s, n=4)
            iqr[n] = 100.0 * (q3 - q1) / statistics.median(s)
        paired = statistics.median(b / a for b, a in zip(samples["dash"], samples["plain"]))
        result = LayerResult(tokens, in_features, out_features, median, iqr, paired)
        results.append(result)
        cells = "  ".join(f"{n} {median[n]:8.3f} ms (IQR {iqr[n]:4.1f}%)" for n in VARIANTS)
        print(
            f"[layer] {tokens:5d} x {in_features} -> {out_features}: {cells}  "
            f"b/a {result.ratio('dash', 'plain'):.3f} (paired {paired:.3f})  c/b {result.ratio('dense', 'dash'):.2f}  "
            f"(other processes: {load:.2f} cores)",
            flush=True,
        )
    return results


def layer_table(results: list[LayerResult]) -> str:
    header = (
        "| tokens x in -> out | textbook LoRA (ms) | (a) DashLinear s=0 (ms) | (b) dash phase (ms) "
        "| (c) dense reference (ms) | (b)/(a) | (b)/textbook | (c)/(b) | (c)/(a) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for r in results:
        m = r.median_ms
        rows.append(
            f"| {r.tokens} x {r.in_features} -> {r.out_features} | {m['textbook']:.3f} | {m['plain']:.3f} "
            f"| {m['dash']:.3f} | {m['dense']:.3f} | {r.ratio('dash', 'plain'):.3f} "
            f"| {r.ratio('dash', 'textbook'):.3f} | {r.ratio('dense', 'dash'):.2f} | {r.ratio('dense', 'plain'):.2f} |"
        )
    spread = max(max(r.iqr_pct.values()) for r in results)
    paired = ", ".join(f"{r.paired_dash_plain:.3f}" for r in results)
    return (
        header
        + "\n".join(rows)
        + f"\n\nLargest interquartile range of any cell: {spread:.1f}% of its median. Cross-check, median over "
        f"repeats of (b)/(a) timed side by side, per row: {paired}.\n"
    )


# ----------------------------------------------------------------------------- phase switch
@dataclass
class SwitchResult:
    parameters: int
    counts: dict[tuple[int, int], int]
    total_s: float
    svd_s: float
    svd_by_shape_s: dict[tuple[int, int], float] = field(default_factory=dict)
    materialize_s: float = 0.0
    peak_memory_gb: float = 0.0


def run_switch(args: argparse.Namespace, device: torch.device) -> SwitchResult:
    unet = build_meta_unet()
    parameters = sum(p.numel() for p in unet.parameters())
    names = linear_names(unet, UNET_TARGET_MODULES)
    targets = UNET_TARGET_MODULES
    if args.switch_subset:
        names = names[: args.switch_subset]
        targets = tuple(names)
    counts = dict(sorted(shape_counts(unet, names).items()))
    print(f"[switch] SDXL UNet: {parameters:,} parameters (released: {SDXL_UNET_PARAMETERS:,})", flush=True)
    print(f"[switch] {len(names)} attention projections: " + ", ".join(f"{o}x{i}: {n}" for (o, i), n in counts.items()))

    start = time.perf_counter()
    materialize_linears(unet, names, device=device, seed=args.seed)
    wrapped = dash_inject.inject_dash(unet, DashConfig(rank=args.rank, num_directions=args.directions, target_modules=targets))
    if wrapped != names:
        raise RuntimeError("inject_dash wrapped other modules than the materialised projections")
    generator = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    with torch.no_grad():
        for layer in dash_inject.dash_layers(unet).values():
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=generator) * 0.01)
    materialize_s = time.perf_counter() - start
    print(f"[switch] materialised projections and LoRA factors in {materialize_s:.1f} s", flush=True)

    svd_by_shape: dict[tuple[int, int], float] = defaultdict(float)
    original = dash_inject.iter_batched_svd

    def timed_svd(*a, **k) -> Iterator:
        iterator = original(*a, **k)
        while True:
            begin = time.perf_counter()
            try:
                name, svd = next(iterator)
            except StopIteration:
                return
            synchronize(device)
            svd_by_shape[(svd.U.shape[0], svd.Vh.shape[1])] += time.perf_counter() - begin
            yield name, svd

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with mock.patch.object(dash_inject, "iter_batched_svd", timed_svd):
        synchronize(device)
        begin = time.perf_counter()
        summary = dash_inject.select_directions(unet)
        synchronize(device)
        total_s = time.perf_counter() - begin
    if len(summary) != len(names) or any(len(v["indices"]) != args.directions for v in summary.values()):
        raise RuntimeError("select_directions did not select s directions in every projection")
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB on Linux
    svd_s = sum(svd_by_shape.values())
    result = SwitchResult(parameters, counts, total_s, svd_s, dict(svd_by_shape), materialize_s, peak)
    print(f"[switch] select_directions: {total_s:.1f} s (SVD {svd_s:.1f} s, rest {total_s - svd_s:.2f} s)", flush=True)
    return result


def switch_table(r: SwitchResult, device: torch.device) -> str:
    memory = "peak GPU memory allocated" if device.type == "cuda" else "peak process RSS"
    lines = [
        f"SDXL UNet built from its config with random weights: {r.parameters:,} parameters; "
        f"{sum(r.counts.values())} attention projections adapted.\n",
        "| weight shape (out x in) | matrices | SVD time (s) | SVD per matrix (ms) |",
        "|---|---:|---:|---:|",
    ]
    for shape, count in r.counts.items():
        seconds = r.svd_by_shape_s.get(shape, 0.0)
        lines.append(f"| {shape[0]} x {shape[1]} | {count} | {seconds:.2f} | {1e3 * seconds / count:.1f} |")
    lines += [
        "",
        "| `select_directions(unet)` | seconds |",
        "|---|---:|",
        f"| total | {r.total_s:.2f} |",
        f"| SVD (batched by shape) | {r.svd_s:.2f} |",
        f"| rest (change rates, top-s, install) | {r.total_s - r.svd_s:.2f} |",
        "",
        f"Not part of the switch: materialising the projections and LoRA factors took {r.materialize_s:.1f} s; "
        f"{memory} of the whole process: {r.peak_memory_gb:.1f} GiB.",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- environment, output
def matmul_gflops(device: torch.device, size: tuple[int, int, int] = (4096, 640, 640), calls: int = 10) -> float:
    """Throughput of a plain float32 matmul (bf16 on CUDA) now: a probe of how fast the machine runs."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size[0], size[1], device=device, dtype=dtype)
    b = torch.randn(size[1], size[2], device=device, dtype=dtype)
    a @ b
    synchronize(device)
    begin = time.perf_counter()
    for _ in range(calls):
        a @ b
    synchronize(device)
    return 2 * math.prod(size) * calls / (time.perf_counter() - begin) / 1e9


def markers(device: str, part: str) -> tuple[str, str]:
    key = f"layer_overhead:{device}:{part}"
    return f"<!-- {key}:start -->", f"<!-- {key}:end -->"


def new_document() -> str:
    command = "python benchmarks/layer_overhead.py --device {dev} --markdown docs/benchmarks.md"
    text = DOC_INTRO
    for device, title in (("cpu", "CPU"), ("cuda", "GPU (CUDA)")):
        what = "CPU" if device == "cpu" else "CUDA GPU"
        text += f"\n### {title}\n"
        for part, part_title in (("layer", "Layer forward + backward"), ("switch", "Phase switch")):
            start, end = markers(device, part)
            body = PLACEHOLDER.format(what=what, command=command.format(dev=device))
            text += f"\n#### {part_title}\n\n{start}\n{body}\n{end}\n"
    return text


def write_markdown(path: Path, device: torch.device, part: str, body: str) -> None:
    """Replace this part's section (a new file starts from the document skeleton with every section)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_document())
    replace_section(path, f"layer_overhead:{device.type}:{part}", body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default_device, help="default: cuda when available")
    parser.add_argument("--repeats", type=int, default=300, help="timed repeats per variant and shape")
    parser.add_argument("--warmup", type=int, default=20, help="untimed repeats per variant and shape first")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch CPU threads")
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank r")
    parser.add_argument("--directions", type=int, default=8, help="LoRA-Dash directions s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-layer", action="store_true", help="skip the layer benchmark")
    parser.add_argument("--skip-switch", action="store_true", help="skip the phase-switch benchmark")
    parser.add_argument("--switch-subset", type=int, default=0, metavar="N", help="only the first N projections (quick runs)")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the tables into this markdown file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    print(f"{environment(device)}; device {device.type}", flush=True)
    parts: list[tuple[str, Callable[[], str]]] = []
    if not args.skip_layer:
        parts.append(("layer", lambda: layer_table(run_layer(args, device))))
    if not args.skip_switch:
        parts.append(("switch", lambda: switch_table(run_switch(args, device), device)))
    for part, run in parts:
        gflops_before = matmul_gflops(device)
        clock = RunClock.start()
        table = run()
        seconds, load = clock.stop()
        gflops_after = matmul_gflops(device)
        print(f"\n{table}\n[{part}] {seconds:.0f} s; other processes kept {load:.2f} CPU cores busy; probe matmul {gflops_before:.0f} -> {gflops_after:.0f} GFLOP/s", flush=True)
        if load > 0.1:
            print(f"[{part}] warning: other processes competed for the CPU, the timings are disturbed", flush=True)
        if args.markdown:
            probe = f"; probe matmul (4096 x 640 x 640) {gflops_before:.0f} GFLOP/s before, {gflops_after:.0f} after"
            dtype = "bf16 autocast (bf16 base, fp32 adapter)" if device.type == "cuda" else "float32"
            header = provenance_header(clock, device, probe, (seconds, load)) + f"Device: {device.type}, {dtype}.\n\n"
            write_markdown(args.markdown, device, part, header + table)
    if args.markdown and parts:
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
