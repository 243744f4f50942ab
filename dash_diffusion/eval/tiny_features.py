"""Tiny, randomly initialised DINO and CLIP folders for offline smoke tests of the harness.

They are built from configs (nothing is downloaded) and written with ``save_pretrained``, so the
harness loads them by path exactly like a user's local copy of ``facebook/dino-vits16`` or
``openai/clip-vit-base-patch32``. Their scores are meaningless: they only exercise the code.
The CLIP tokenizer is the byte-level BPE of :mod:`dash_diffusion.models.tiny`.

    python -m dash_diffusion.eval.tiny_features --out models/tiny   # writes models/tiny/{dino,clip}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DINO_SETTINGS: dict[str, int] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37, "image_size": 64, "patch_size": 16}
CLIP_VISION_SETTINGS: dict[str, int] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37, "image_size": 32, "patch_size": 16}
CLIP_TEXT_SETTINGS: dict[str, int] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37, "max_position_embeddings": 77}
CLIP_PROJECTION_DIM = 16


def save_tiny_dino(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer ViT (patch 16, 64 px) saved like ``facebook/dino-vits16`` (no pooler)."""
    import torch
    from transformers import ViTConfig, ViTModel

    target = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViTModel(ViTConfig(**DINO_SETTINGS), add_pooling_layer=False)
    model.save_pretrained(target)
    return target


def save_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer CLIP (vision 32 px, text with the tiny BPE) plus tokenizer and preprocessor files."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from dash_diffusion.models.tiny import write_tokenizer_files

    target = Path(folder)
    write_tokenizer_files(target)
    tokenizer = CLIPTokenizer.from_pretrained(target)
    text = dict(CLIP_TEXT_SETTINGS, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = CLIPConfig(text_config=text, vision_config=dict(CLIP_VISION_SETTINGS), projection_dim=CLIP_PROJECTION_DIM)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    model.save_pretrained(target)
    side = CLIP_VISION_SETTINGS["image_size"]
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}).save_pretrained(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dash_diffusion.eval.tiny_features", description="Write tiny random DINO and CLIP folders (offline smoke tests only).")
    parser.add_argument("--out", required=True, help="folder that receives dino/ and clip/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = Path(args.out)
    print(save_tiny_dino(root / "dino", args.seed))
    print(save_tiny_clip(root / "clip", args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
