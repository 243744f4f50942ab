"""Training step of a full-size SDXL UNet: PEFT LoRA vs this project's plain LoRA vs LoRA-Dash.

The UNet is built from the SDXL base config with random weights (speed and memory do not depend on the
values; nothing is downloaded). Variants, on the same attention projections (to_q, to_k, to_v, to_out.0):

(a) PEFT LoRA injected with ``unet.add_adapter(LoraConfig(...))``, as diffusers' DreamBooth example does;
(b) this project's plain LoRA (``DashLinear`` with s = 0);
(c) LoRA-Dash in the dash phase (``DashLinear`` with s directions installed; their values do not
    matter for speed, so random orthonormal columns are installed instead of running the SVD here).

One step = forward, MSE loss, backward, AdamW step on the adapter parameters. Variants run in rounds
(a, b, c, a, b, c, ...) in one process; medians per variant. On CUDA: bf16 weights and autocast, fp32
adapters, 1024x1024 (latents 128x128), peak memory per variant from ``torch.cuda.max_memory_allocated``.
On the CPU: float32 at 256x256 (latents 32x32), no memory column.

    python benchmarks/sdxl_step.py --markdown docs/benchmarks.md                 # CPU
    python benchmarks/sdxl_step.py --device cuda --markdown docs/benchmarks.md   # GPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import RunClock, publish  # noqa: E402
from sdxl_unet import build_meta_unet  # noqa: E402

from dash_diffusion import DashConfig, dash_layers, inject_dash, trainable_parameters, unwrap_dash  # noqa: E402
from dash_diffusion.lora_dash.directions import Selection  # noqa: E402

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@torch.no_grad()
def materialize_unet(device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """The whole SDXL UNet with small random weights on ``device``."""
    unet = build_meta_unet()
    unet.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    for parameter in unet.parameters():
        parameter.normal_(0.0, 0.02, generator=generator)
    for buffer in unet.buffers():
        buffer.zero_()
    return unet.to(dtype=dtype)


def unet_inputs(device: torch.device, dtype: torch.dtype, latent: int) -> dict:
    return {
        "sample": torch.randn(1, 4, latent, latent, device=device, dtype=dtype),
        "timestep": torch.tensor([500], device=device),
        "encoder_hidden_states": torch.randn(1, 77, 2048, device=device, dtype=dtype),
        "added_cond_kwargs": {"text_embeds": torch.randn(1, 1280, device=device, dtype=dtype), "time_ids": torch.tensor([[1024.0, 1024, 0, 0, 1024, 1024]], device=device, dtype=dtype)},
    }


@torch.no_grad()
def install_random_directions(unet: nn.Module) -> None:
    for layer in dash_layers(unet).values():
        s = layer.num_directions
        U = torch.linalg.qr(torch.randn(layer.out_features, s, device=layer.dash_U.device))[0]
        V = torch.linalg.qr(torch.randn(layer.in_features, s, device=layer.dash_V.device))[0]
        layer.set_directions(Selection(U_s=U, V_s=V, indices=torch.arange(s), change_rates=torch.zeros_like(layer.dash_change_rate)))
        layer.dash_delta.fill_(0.01)


def attach(unet: nn.Module, variant: str, rank: int, directions: int) -> list[nn.Parameter]:
    """Put variant ``variant``'s adapter on ``unet``; returns its trainable parameters."""
    if variant == "peft":
        from peft import LoraConfig

        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGETS), adapter_name="bench")
        for name, parameter in unet.named_parameters():
            if "lora_" in name:
                parameter.data = parameter.data.float()  # fp32 adapter weights, as the trainers keep them
        return [p for n, p in unet.named_parameters() if "lora_" in n]
    inject_dash(unet, DashConfig(rank=rank, num_directions=0 if variant == "plain" else directions, target_modules=tuple(TARGETS)))
    if variant == "dash":
        install_random_directions(unet)
    return trainable_parameters(unet)


def detach_adapter(unet: nn.Module, variant: str) -> None:
    if variant == "peft":
        unet.unload_lora()  # removes the PEFT layers, not only the adapter
    else:
        unwrap_dash(unet)


def timed_steps(unet: nn.Module, params: list[nn.Parameter], inputs: dict, steps: int, device: torch.device, autocast: torch.dtype | None) -> list[float]:
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            prediction = unet(**inputs, return_dict=False)[0]
        loss = prediction.float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=None, help="pixels (default 1024 on CUDA, 256 on CPU)")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--directions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them (0 is fine on a CPU)")
    parser.add_argument("--checkpointing", choices=["both", "on", "off"], default="both")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    resolution = args.resolution or (1024 if cuda else 256)
    dtype, autocast = (torch.bfloat16, torch.bfloat16) if cuda else (torch.float32, None)
    clock = RunClock.start()
    unet = materialize_unet(device, dtype)
    unet.requires_grad_(False)
    unet.train()
    inputs = unet_inputs(device, dtype, resolution // 8)
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.checkpointing]
    variants = ["peft", "plain", "dash"]
    rows = []
    for checkpointing in modes:
        if checkpointing:
            unet.enable_gradient_checkpointing()
        else:
            unet.disable_gradient_checkpointing()
        times: dict[str, list[float]] = {v: [] for v in variants}
        peaks: dict[str, int] = {v: 0 for v in variants}
        for _ in range(args.rounds):
            for variant in variants:
                params = attach(unet, variant, args.rank, args.directions)
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                steps = timed_steps(unet, params, inputs, args.warmup + args.steps, device, autocast)
                times[variant] += steps[args.warmup :]
                if cuda:
                    peaks[variant] = max(peaks[variant], torch.cuda.max_memory_allocated(device))
                detach_adapter(unet, variant)
        median = {v: statistics.median(times[v]) for v in variants}
        rows.append((checkpointing, median, peaks))
    lines = [
        f"SDXL UNet ({sum(p.numel() for p in unet.parameters()) / 1e9:.2f} B parameters, random weights), {resolution}x{resolution} (latents {resolution // 8}x{resolution // 8}), batch 1, "
        f"{'bf16 weights + autocast, fp32 adapters' if cuda else 'float32'}, rank {args.rank}, s = {args.directions}, on {device.type} ({torch.cuda.get_device_name(device) if cuda else f'{torch.get_num_threads()} threads'}); "
        f"median of {args.rounds} x {args.steps} steps per variant ({args.warmup} untimed warm-up step each), variants interleaved.",
        "",
        "| gradient checkpointing | (a) PEFT LoRA steps/s | (b) plain LoRA steps/s | (c) LoRA-Dash steps/s | (c)/(b) time | (b)/(a) time |" + (" peak GiB (a) / (b) / (c) |" if cuda else ""),
        "|---|---|---|---|---|---|" + ("---|" if cuda else ""),
    ]
    for checkpointing, median, peaks in rows:
        memory = f" {peaks['peft'] / 2**30:.2f} / {peaks['plain'] / 2**30:.2f} / {peaks['dash'] / 2**30:.2f} |" if cuda else ""
        lines.append(f"| {'on' if checkpointing else 'off'} | {1 / median['peft']:.4g} | {1 / median['plain']:.4g} | {1 / median['dash']:.4g} | {median['dash'] / median['plain']:.3f} | {median['plain'] / median['peft']:.3f} |" + memory)
    table = "\n".join(lines)
    publish(table, args.markdown, f"sdxl_step:{device.type}", clock, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
