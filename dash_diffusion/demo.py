"""``make demo``: train a LoRA-Dash adapter on the sample robot with the built-in tiny SDXL, then load it
into a stock diffusers pipeline and generate an image. No GPU and no download needed.

    python -m dash_diffusion.demo --output_dir outputs/demo
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_PROMPT = "a photo of sks robot on the beach"


def training_command(output_dir: Path, steps: int, warmup: int) -> list[str]:
    """``accelerate launch`` of the real trainer on ``samples/robot`` with the tiny model."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "train_dreambooth_dash.py"),
        "--pretrained_model_name_or_path", "builtin:tiny-sdxl",
        "--instance_dir", str(ROOT / "samples" / "robot"),
        "--resolution", "64", "--bucketing", "--bucket_step", "8", "--random_flip",
        "--rank", "4", "--dash_directions", "8", "--dash_warmup_steps", str(warmup),
        "--learning_rate", "1e-3", "--max_train_steps", str(steps), "--checkpointing_steps", str(steps),
        "--validation_prompt", DEMO_PROMPT, "--validation_steps", str(steps), "--num_validation_images", "1",
        "--validation_inference_steps", "10",
        "--output_dir", str(output_dir),
    ]


def generate_with_stock_diffusers(output_dir: Path) -> Path:
    """Load the exported folder with ``StableDiffusionXLPipeline.load_lora_weights`` and render one image."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    from dash_diffusion.models.tiny import resolve_model_path

    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model_path("builtin:tiny-sdxl"))
    pipe.load_lora_weights(str(output_dir))
    pipe.set_progress_bar_config(disable=True)
    image = pipe(DEMO_PROMPT, num_inference_steps=10, height=64, width=64, generator=torch.Generator().manual_seed(0)).images[0]
    path = output_dir / "demo_sample.png"
    image.resize((256, 256)).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir).resolve()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.time()
    command = training_command(output_dir, args.steps, args.warmup)
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode:
        print(f"demo: training failed (exit {result.returncode})", file=sys.stderr)
        return result.returncode
    image = generate_with_stock_diffusers(output_dir)
    print(f"\ndemo finished in {time.time() - started:.0f} s")
    print(f"adapter files:     {output_dir}/pytorch_lora_weights.safetensors (diffusers), lora_dash_kohya.safetensors (ComfyUI/A1111), dash_adapter.safetensors (native)")
    print(f"model card:        {output_dir}/README.md")
    print(f"generated image:   {image}  (stock diffusers pipeline + load_lora_weights)")
    print(f"validation images: {output_dir}/validation/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
