"""A built-in, tiny, deterministic Stable Diffusion XL pipeline.

Everything is built from configs (no weights are downloaded): a two-level UNet with SDXL's
``text_time`` conditioning, a small VAE, two small CLIP text encoders and two CLIP tokenizers whose
byte-level BPE vocabulary this module writes itself. The same seed always gives bit-identical weights,
so the demo, the tests and the app can exercise the real SDXL code paths offline and in seconds.

Run ``python -m dash_diffusion.models.tiny --out DIR [--seed N]`` to write one to disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dash_diffusion.cli_runner import run_cli
from dash_diffusion.errors import DashError

if TYPE_CHECKING:  # the heavy libraries are imported only when a model is actually built
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTokenizer

TINY_MODEL_NAME = "builtin:tiny-sdxl"
CACHE_ENV = "DASH_DIFFUSION_CACHE"
TINY_CACHE_SUBDIR = "tiny-sdxl-v1"

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
MAX_LENGTH = 77
END_OF_WORD = "</w>"

# A handful of merges (in rank order) so common words become single tokens. Every merge result is
# added to the vocabulary; anything else falls back to the 256 byte-level symbols.
_MERGES: tuple[tuple[str, str], ...] = (
    ("t", "h"),
    ("i", "n"),
    ("e", "r"),
    ("a", "n"),
    ("r", "e"),
    ("o", "n"),
    ("e", "n"),
    ("a", "t"),
    ("o", "u"),
    ("o", "r"),
    ("s", "t"),
    ("a", "r"),
    ("e", "s"),
    ("th", "e</w>"),
    ("an", "d</w>"),
    ("in", "g</w>"),
    ("o", "f</w>"),
    ("i", "n</w>"),
    ("o", "n</w>"),
    ("e", "d</w>"),
    ("p", "h"),
    ("ph", "o"),
    ("pho", "t"),
    ("phot", "o</w>"),
    ("d", "o"),
    ("do", "g</w>"),
    ("r", "o"),
    ("ro", "b"),
    ("rob", "o"),
    ("robo", "t</w>"),
    ("s", "k"),
    ("sk", "s</w>"),
)

TEXT_ENCODER_SETTINGS: dict[str, object] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "projection_dim": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": MAX_LENGTH,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}

UNET_CONFIG: dict[str, object] = {
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "transformer_layers_per_block": (1, 2),
    "cross_attention_dim": 64,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 80,
    "norm_num_groups": 32,
}

VAE_CONFIG: dict[str, object] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 64,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}

SCHEDULER_CONFIG: dict[str, object] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for raw bytes used by byte-level BPE, indexed by byte value."""
    printable = set(range(ord("!"), ord("~") + 1))
    printable |= set(range(0xA1, 0xAC + 1))
    printable |= set(range(0xAE, 0xFF + 1))
    symbols: list[str] = []
    shifted = 0
    for value in range(256):
        if value in printable:
            symbols.append(chr(value))
        else:
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols


def tiny_vocabulary() -> dict[str, int]:
    """The tokenizer vocabulary: bytes, bytes ending a word, merge results, then BOS and EOS."""
    symbols = _byte_symbols()
    tokens = symbols + [symbol + END_OF_WORD for symbol in symbols]
    tokens += [left + right for left, right in _MERGES]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    if len(set(tokens)) != len(tokens):
        raise RuntimeError("tiny vocabulary has duplicate tokens")
    return {token: index for index, token in enumerate(tokens)}


def write_tokenizer_files(folder: str | Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` of the tiny byte-level BPE tokenizer into ``folder``."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    vocab_text = json.dumps(tiny_vocabulary(), ensure_ascii=False, indent=0)
    (target / "vocab.json").write_text(vocab_text + "\n", encoding="utf-8")
    merge_lines = ["#version: 0.2"] + [f"{left} {right}" for left, right in _MERGES]
    (target / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    return target


def _build_tokenizer() -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="dash-tiny-tokenizer-") as folder:
        write_tokenizer_files(folder)
        tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_LENGTH)
    expected = len(tiny_vocabulary())
    if len(tokenizer) != expected:
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens, expected {expected}")
    return tokenizer


def _text_config(tokenizer: CLIPTokenizer) -> CLIPTextConfig:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT_ENCODER_SETTINGS,
    )


def build_tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """Build the tiny SDXL pipeline in float32 on the CPU; the same seed gives bit-identical weights.

    The caller's global random state is left untouched.
    """
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _build_tokenizer()
    tokenizer_2 = _build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        # Seed only the CPU generator (all weights are created on the CPU), so CUDA state is untouched.
        torch.default_generator.manual_seed(int(seed))
        unet = UNet2DConditionModel(**UNET_CONFIG)
        vae = AutoencoderKL(**VAE_CONFIG)
        text_encoder = CLIPTextModel(_text_config(tokenizer))
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer_2))
    for model in (unet, vae, text_encoder, text_encoder_2):
        model.eval()
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


#: Sub-folders of a saved pipeline that must hold weights.
WEIGHT_FOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2")


def is_complete_pipeline(folder: Path) -> bool:
    """Whether ``folder`` holds a saved SDXL pipeline: ``model_index.json`` and weights for every model."""
    return (folder / "model_index.json").is_file() and all(any((folder / sub).glob("*.safetensors")) for sub in WEIGHT_FOLDERS)


def _materialise(target: Path, seed: int, reuse_existing: bool) -> Path:
    """Save a tiny pipeline into a temporary sibling of ``target`` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
        pipeline = build_tiny_sdxl_pipeline(seed)
        pipeline.save_pretrained(staging, safe_serialization=True)
        for sub in ("tokenizer", "tokenizer_2"):
            write_tokenizer_files(staging / sub)
        if not is_complete_pipeline(staging):
            # transformers writes weights on rank 0 only once torch.distributed is initialised
            raise DashError(f"could not write the tiny model's weights into {target.parent}: resolve builtin models before starting a multi-process group")
        try:
            os.rename(staging, target)  # atomic; replaces ``target`` only if it is an empty folder
        except OSError as error:
            if reuse_existing and is_complete_pipeline(target):
                return target  # another process won the race; its copy is identical
            raise DashError(
                f"cannot write the tiny model to {target} ({error.strerror}); "
                "delete that folder or pick another one"
            ) from error
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def save_tiny_sdxl(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline to ``out_dir`` with ``save_pretrained`` (atomically) and return that path.

    ``out_dir`` must not exist yet or be an empty folder; its parents are created as needed.
    """
    target = Path(out_dir).expanduser().absolute()
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise DashError(f"output path {target} already exists and is not an empty folder; delete it or pick a new one")
    return _materialise(target, seed, reuse_existing=False)


def default_cache_dir() -> Path:
    """Where built-in models are materialised: ``$DASH_DIFFUSION_CACHE`` or ``~/.cache/dash_diffusion``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "dash_diffusion"


def tiny_model_folder(cache_dir: str | Path | None = None) -> Path:
    """The folder of ``builtin:tiny-sdxl`` under ``cache_dir`` (default :func:`default_cache_dir`),
    written on first use (safe if processes race) and reused afterwards."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root.absolute() / TINY_CACHE_SUBDIR
    if is_complete_pipeline(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise DashError(f"cached tiny model at {target} is incomplete; delete that folder and retry")
    return _materialise(target, seed=0, reuse_existing=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: write a tiny SDXL pipeline and print its folder."""
    parser = argparse.ArgumentParser(
        description="Write the built-in tiny SDXL pipeline (random weights, built offline) to a folder.",
    )
    parser.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = parser.parse_args(argv)
    return run_cli(lambda: str(save_tiny_sdxl(args.out, seed=args.seed)), (), "nothing was written (the folder appears only when complete)")


if __name__ == "__main__":
    sys.exit(main())
