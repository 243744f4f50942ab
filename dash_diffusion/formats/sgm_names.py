"""Module names as adapter files spell them: kohya/SGM names of the SDXL UNet (ComfyUI, A1111,
sd-scripts) and canonical CLIP text-encoder paths.

The SGM UNet numbers its blocks flatly. With ``n = layers_per_block`` (2 for SDXL)::

    down_blocks.b.attentions.a  <->  input_blocks.(b * (n + 1) + a + 1).1
    mid_block.attentions.0      <->  middle_block.1
    up_blocks.b.attentions.a    <->  output_blocks.(b * (n + 1) + a).1

(``input_blocks.0`` is conv_in and every down block but the last ends with a downsampler, hence
``n + 1`` slots per block; up blocks have ``n + 1`` resnets.) A kohya key is ``lora_unet_`` plus the
SGM path with dots turned into underscores; text encoders use ``lora_te1_`` / ``lora_te2_`` plus the
transformers module path.
"""

from __future__ import annotations

import re

from ..errors import DashError

KOHYA_PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}

_DOWN = re.compile(r"^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$")
_MID = re.compile(r"^mid_block\.attentions\.0\.(.+)$")
_UP = re.compile(r"^up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$")
_INPUT = re.compile(r"^input_blocks\.(\d+)\.1\.(.+)$")
_MIDDLE = re.compile(r"^middle_block\.1\.(.+)$")
_OUTPUT = re.compile(r"^output_blocks\.(\d+)\.1\.(.+)$")


def unet_to_sgm(name: str, layers_per_block: int) -> str:
    """``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`` -> ``input_blocks.4.1.transformer_blocks.0.attn1.to_q``."""
    slots = layers_per_block + 1
    if m := _DOWN.match(name):
        return f"input_blocks.{int(m[1]) * slots + int(m[2]) + 1}.1.{m[3]}"
    if m := _MID.match(name):
        return f"middle_block.1.{m[1]}"
    if m := _UP.match(name):
        return f"output_blocks.{int(m[1]) * slots + int(m[2])}.1.{m[3]}"
    raise DashError(f"module '{name}' lies outside the UNet's attention blocks: the kohya export covers attention layers only")


def sgm_to_unet(name: str, layers_per_block: int) -> str:
    """Inverse of :func:`unet_to_sgm`."""
    slots = layers_per_block + 1
    if m := _INPUT.match(name):
        block, position = divmod(int(m[1]) - 1, slots)
        return f"down_blocks.{block}.attentions.{position}.{m[2]}"
    if m := _MIDDLE.match(name):
        return f"mid_block.attentions.0.{m[1]}"
    if m := _OUTPUT.match(name):
        block, position = divmod(int(m[1]), slots)
        return f"up_blocks.{block}.attentions.{position}.{m[2]}"
    raise DashError(f"'{name}' is not an SGM attention-block path")


def canonical_text_encoder_path(name: str) -> str:
    """The CLIP module path as every LoRA tool spells it: ``text_model.encoder.layers.0.self_attn.q_proj``.

    transformers 5 dropped the ``text_model`` level of ``CLIPTextModel`` (``encoder.layers.0...``) but not
    of ``CLIPTextModelWithProjection``; files always carry the canonical spelling.
    """
    return name if name.startswith("text_model.") else f"text_model.{name}"


def file_module_name(prefix: str, name: str) -> str:
    """How adapter files name module ``name`` of component ``prefix`` (canonical CLIP paths for text encoders)."""
    return name if prefix == "unet" else canonical_text_encoder_path(name)


def kohya_module_key(prefix: str, name: str, layers_per_block: int = 2) -> str:
    """The kohya key stem of a module: ``lora_unet_input_blocks_4_1_..._to_q`` or ``lora_te1_text_model_...``."""
    path = unet_to_sgm(name, layers_per_block) if prefix == "unet" else canonical_text_encoder_path(name)
    return KOHYA_PREFIXES[prefix] + path.replace(".", "_")
