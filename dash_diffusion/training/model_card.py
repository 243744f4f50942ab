"""The README.md model card written beside an exported adapter."""

from __future__ import annotations

from typing import Any

from ..formats.export import DIFFUSERS_WEIGHT_NAME, KOHYA_WEIGHT_NAME, NATIVE_WEIGHT_NAME


def model_card(base_model: str, trigger_prompt: str, metadata: dict[str, Any], train_text_encoder: bool) -> str:
    """Markdown: what the adapter is, its trigger prompt, how to load it in diffusers, ComfyUI and A1111."""
    rank, s, t = metadata["rank"], metadata["num_directions"], metadata["warmup_steps"]
    method = f"LoRA-Dash (rank {rank}, {s} task-specific directions selected after {t} steps)" if s else f"plain LoRA (rank {rank})"
    folded = rank + s
    return f"""---
base_model: {base_model}
library_name: diffusers
tags: [stable-diffusion-xl, lora, lora-dash, dreambooth, dash_diffusion]
instance_prompt: {trigger_prompt}
---

# {trigger_prompt} — {method}

Trained with dash_diffusion's DreamBooth trainer on `{base_model}`
({metadata.get("global_step", "?")} optimizer steps; directions selected at step {metadata.get("selected_at_step")}).
{"The adapter also covers both text encoders." if train_text_encoder else "The text encoders are not adapted."}

**Trigger prompt:** `{trigger_prompt}`

## Files
| file | for |
|---|---|
| `{DIFFUSERS_WEIGHT_NAME}` | diffusers `load_lora_weights` (the LoRA-Dash term folded exactly into rank {folded}) |
| `{KOHYA_WEIGHT_NAME}` | ComfyUI, A1111/Forge, sd-scripts (kohya/SGM names, alpha = rank = {folded}, strength 1.0 = as trained) |
| `{NATIVE_WEIGHT_NAME}` | dash_diffusion: raw LoRA factors, selected directions, their scales and change rates |

## diffusers
```python
import torch
from diffusers import StableDiffusionXLPipeline

# diffusers >= 0.40; older versions spell it torch_dtype=torch.float16
pipe = StableDiffusionXLPipeline.from_pretrained("{base_model}", dtype=torch.float16).to("cuda")
pipe.load_lora_weights("path/to/this/folder")
image = pipe("{trigger_prompt} on a beach", num_inference_steps=30).images[0]
```

## ComfyUI
Copy `{KOHYA_WEIGHT_NAME}` into `ComfyUI/models/loras/` and add a *Load LoRA* node after the checkpoint
loader (strength 1.0 for both model and CLIP).

## AUTOMATIC1111 / Forge
Copy `{KOHYA_WEIGHT_NAME}` into `models/Lora/` and add `<lora:lora_dash_kohya:1>` to the prompt together
with `{trigger_prompt}`.

## LoRA-Dash settings
| setting | value |
|---|---|
| rank r | {rank} |
| alpha | {metadata["alpha"]} |
| directions s | {s} |
| warm-up t (optimizer steps) | {t} |
| target modules | {", ".join(metadata["target_modules"])} |
"""
