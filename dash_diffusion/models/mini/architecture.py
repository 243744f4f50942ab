"""``builtin:mini-sdxl``: the SDXL architecture at a size this project can pretrain on a CPU.

Every part of SDXL is there: a UNet2DConditionModel with ``text_time`` conditioning (pooled text
embedding + the six size/crop numbers) and cross-attention on the concatenated penultimate states of
two CLIP text encoders (``CLIPTextModel`` and ``CLIPTextModelWithProjection``), an AutoencoderKL with
SDXL's 8x downsampling (128 px images, 16 x 16 latents, 16 channels: see :data:`LATENT_CHANNELS`), and CLIP tokenizers whose vocabulary
makes every word of the procedural world one token. Only the widths and depths are small.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from ..tiny import MAX_LENGTH, SCHEDULER_CONFIG
from .tokenizer import write_word_tokenizer

if TYPE_CHECKING:
    from diffusers import StableDiffusionXLPipeline

RESOLUTION = 128
TEXT_HIDDEN = 64
LATENT_CHANNELS = 16
"""SDXL's VAE has 4 latent channels; this one has 16 (as SD3's and Flux's do). With 4, the small VAE's
reconstructions stopped improving at a mean absolute error of 0.11 (on [-1, 1] pixels) with shifted
colours and the robot's chest emblem lost, which would hide exactly what a learned subject looks like.
The 16-channel VAE stalled at the same error, and regrouping its normalisation (:data:`VAE_NORM_GROUPS`)
halved it; whether 4 channels would do with 8 groups has not been tried."""

MINI_SCHEDULER_CONFIG: dict[str, object] = {**SCHEDULER_CONFIG, "prediction_type": "v_prediction"}
"""SDXL's noise schedule with v-prediction, ``v = sqrt(a_t) * noise - sqrt(1 - a_t) * x0``. An
epsilon-predicting UNet this small, a few thousand steps in, leaves an error of rms ~0.3 at t=999, which the
sampler turns into an x0 error of ~4.5 (pure noise at the end); a v target bounds that error by ~|x0|."""

TEXT_ENCODER_SETTINGS: dict[str, object] = {
    "hidden_size": TEXT_HIDDEN,
    "intermediate_size": 4 * TEXT_HIDDEN,
    "projection_dim": TEXT_HIDDEN,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": MAX_LENGTH,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}

UNET_CONFIG: dict[str, object] = {
    "sample_size": RESOLUTION // 8,
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "block_out_channels": (64, 128, 160),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3,
    "up_block_types": ("CrossAttnUpBlock2D",) * 3,
    "attention_head_dim": (1, 2, 2),  # diffusers' name for the number of heads (64-80 channels each)
    "use_linear_projection": True,
    "transformer_layers_per_block": (1, 1, 1),
    "cross_attention_dim": 2 * TEXT_HIDDEN,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 16,
    "projection_class_embeddings_input_dim": 6 * 16 + TEXT_HIDDEN,
    "norm_num_groups": 32,
}
"""Transformer blocks (attention) at every level, the 16 x 16 latent included, where SDXL has none at its
finest level (128 x 128 latents). A subject standing in a 128 px picture is about 9 latent pixels tall
here, so the 16 x 16 level is where its parts (head, arms, chest emblem) are drawn, as SDXL's 64 x 64
level draws them in a 1024 px picture. Measured on the UNet without these blocks, fine-tuned on the
demo's six photos (600 steps, batch 6): every attention projection trained at full rank still gave teal
blobs, while adding the 16 x 16 blocks' weights gave the robot, with its head, antenna, arms and a
yellow emblem. Adapters on the attention projections (LoRA's and LoRA-Dash's usual targets) cannot
reach a level without attention, so the blocks are there for them
(``benchmarks/mini_subject_reach.py`` measures what each set of weights can show). Older UNets grow into
this layout exactly (:mod:`.grow`); the shipped UNet is the previous one grown so and continued for 13,500
steps, and its new blocks are still opening (``proj_out`` norms about 1.3 at 16 x 16 against about 7 at
the coarser levels), which is why the demo's adapter also covers ``proj_out`` and the feed-forward layers."""

VAE_NORM_GROUPS = 8
"""GroupNorm groups in the VAE: 4 to 8 channels each. The first VAE used diffusers' default of 32, which
on its 32-channel layers is one channel per group (instance normalisation): it removes each channel's
mean over the picture right before the decoder's output convolution, and reconstructions of flat
cartoon colours stalled at a mean absolute error of 0.11 with teal turned blue. Refitting that VAE to 8
groups on its own latent space (:mod:`.vae_refit`) halved the error but kept its blur (no faces, no
emblems); the shipped VAE is a new one trained from scratch with 8 groups, these widths and an edge loss
(``pretrain --init_parts text_unet``), error 0.026 (``benchmarks/mini_vae.py``)."""

VAE_CONFIG: dict[str, object] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (32, 64, 96, 96),
    "layers_per_block": 1,
    "latent_channels": LATENT_CHANNELS,
    "norm_num_groups": VAE_NORM_GROUPS,
    "sample_size": RESOLUTION,
    "scaling_factor": 1.0,  # set from the trained VAE's latent spread by the pretraining script
    "force_upcast": True,
}


def build_tokenizer(words: list[str]):
    """A CLIPTokenizer whose vocabulary makes each of ``words`` one token."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="dash-mini-tokenizer-") as folder:
        write_word_tokenizer(folder, words)
        return CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_LENGTH)


def build_mini_sdxl_pipeline(words: list[str], seed: int = 0) -> StableDiffusionXLPipeline:
    """The untrained mini SDXL (float32, CPU); the same words and seed give bit-identical weights.
    The caller's global random state is left untouched."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer, tokenizer_2 = build_tokenizer(words), build_tokenizer(words)
    text_config = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TEXT_ENCODER_SETTINGS)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        unet = UNet2DConditionModel(**UNET_CONFIG)
        vae = AutoencoderKL(**VAE_CONFIG)
        text_encoder = CLIPTextModel(text_config)
        text_encoder_2 = CLIPTextModelWithProjection(text_config)
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
        unet=unet, scheduler=EulerDiscreteScheduler(**MINI_SCHEDULER_CONFIG), force_zeros_for_empty_prompt=True, add_watermarker=False,
    )
