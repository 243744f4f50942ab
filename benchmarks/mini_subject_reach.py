"""Which of a mini-sdxl UNet's weights can carry the demo subject: full-rank fine-tuning of weight subsets.

    python benchmarks/mini_subject_reach.py --model builtin:mini-sdxl --markdown docs/benchmarks.md --grid docs/images/mini_subject_reach.png

An adapter can only change the weights it is put on. This measures the most that training a subset of the
UNet's weights can show of the subject, without the rank limit of an adapter: for each subset, a copy of
the UNet learns ``a photo of sks robot`` from the six pictures of ``samples/robot`` (every weight of the
subset trained at full rank, AdamW, v-prediction loss, no prior preservation), then renders that prompt at
a few seeds, and the world's instance judge scores the pictures against the photos (mean cosine of instance
embeddings; a render of the subject against another render of it scores about 0.9, the base model's
robots about 0 or below: -0.15 on the previous weights, -0.02 on the shipped ones in `make demo`). The subsets:

* ``attention``: the attention projections ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of every
  transformer block, the weights LoRA and LoRA-Dash adapt by default (at full rank here);
* ``attention+16px``: those and every weight of the blocks at the 16 x 16 latent level
  (``down_blocks.0``, ``up_blocks.2``), where a 128 px subject's parts are drawn;
* ``all``: the whole UNet (DreamBooth's full fine-tuning).

A subset that cannot show the subject here cannot show it through any adapter on it either.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from mini_vae import sample_photos
from picture_rows import save_picture_rows
from provenance import RunClock, publish

SUBSETS: dict[str, str] = {
    "attention": r"attn[12]\.(to_q|to_k|to_v|to_out\.0)\.",
    "attention+16px": r"attn[12]\.(to_q|to_k|to_v|to_out\.0)\.|^down_blocks\.0\.|^up_blocks\.2\.",
    "all": r".",
}
"""Regular expressions over the UNet's parameter names."""
PROMPT = "a photo of sks robot"


def fine_tune(pipe, pattern: str, photos: list, steps: int, learning_rate: float, seed: int) -> int:
    """Train the UNet parameters whose names match ``pattern`` on ``photos`` (all at once per step) with
    :data:`PROMPT`; returns how many parameters were trained."""
    from diffusers import DDPMScheduler

    from dash_diffusion.models.mini.pretrain import to_tensor
    from dash_diffusion.training.sdxl import diffusion_loss, training_target

    torch.manual_seed(seed)
    with torch.no_grad():
        latents = pipe.vae.encode(to_tensor(photos)).latent_dist.mean * pipe.vae.config.scaling_factor
        embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)
    count = len(photos)
    size = float(pipe.unet.config.sample_size * pipe.vae_scale_factor)
    conditioning = {"text_embeds": pooled.expand(count, -1), "time_ids": torch.tensor([[size, size, 0.0, 0.0, size, size]]).expand(count, -1)}
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    trained = [parameter for name, parameter in pipe.unet.named_parameters() if re.search(pattern, name)]
    optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.0)
    pipe.unet.train()
    for _ in range(steps):
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (count,))
        prediction = pipe.unet(scheduler.add_noise(latents, noise, timesteps), timesteps, encoder_hidden_states=embeds.expand(count, -1, -1), added_cond_kwargs=conditioning).sample
        loss = diffusion_loss(prediction, training_target(scheduler, latents, noise, timesteps), timesteps, scheduler, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    pipe.unet.eval()
    return sum(parameter.numel() for parameter in trained)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, help="built-in name or pipeline folder (repeatable; default builtin:mini-sdxl)")
    parser.add_argument("--subset", action="append", choices=sorted(SUBSETS), default=None, help="weights to train (repeatable; default all three)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--seeds", type=int, default=4, help="pictures rendered per subset")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--grid", type=Path, default=None, help="write the rendered pictures, one row per model and subset")
    args = parser.parse_args(argv)
    from diffusers import StableDiffusionXLPipeline

    from dash_diffusion.demo import GUIDANCE, INFERENCE_STEPS
    from dash_diffusion.models.builtin import resolve_model_path
    from dash_diffusion.models.world_judges import instance_similarity, load_judges

    clock, judges, photos = RunClock.start(), load_judges(), sample_photos()
    subsets = args.subset or list(SUBSETS)
    lines = [
        f"`{PROMPT}` learned from the 6 photos of samples/robot (128 px, all 6 in every step): {args.steps} steps, AdamW lr {args.learning_rate:g}, no prior preservation;",
        f"then {args.seeds} pictures of that prompt ({INFERENCE_STEPS} Euler steps, guidance {GUIDANCE}), scored by the instance judge against the photos.",
        "",
        "| model | weights trained | parameters | instance similarity |",
        "| --- | --- | ---: | ---: |",
    ]
    rows = []
    for name in args.model or ["builtin:mini-sdxl"]:
        for subset in subsets:
            pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path(name))
            pipe.unet.float()
            pipe.set_progress_bar_config(disable=True)
            count = fine_tune(pipe, SUBSETS[subset], photos, args.steps, args.learning_rate, seed=0)
            pictures = [pipe(PROMPT, num_inference_steps=INFERENCE_STEPS, guidance_scale=GUIDANCE, generator=torch.Generator().manual_seed(seed)).images[0] for seed in range(args.seeds)]
            rows.append(pictures)
            lines.append(f"| {name} | {subset} | {count:,} | {instance_similarity(judges, pictures, photos):.3f} |")
            print(lines[-1], flush=True)
    if args.grid:
        save_picture_rows(rows, args.grid)
    publish("\n".join(lines) + "\n", args.markdown, "mini_subject_reach", clock, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
