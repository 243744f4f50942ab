"""Module names as adapter files spell them: kohya/SGM names of the SDXL UNet (ComfyUI, A1111,
sd-scripts) and canonical CLIP text-encoder paths.

The SGM UNet numbers its blocks flatly. With ``n = layers_per_block`` (2 for SDXL)::

    down_blocks.b.attentions.a  <->  input_blocks.(b * (n + 1) + a + 1).1
    mid_block.attentions.0      <->  middle_block.1
    up_blocks.b.attentions.a    <->  output_blocks.(b * (n + 1) + a).1

(``input_blocks.0`` is conv_in and every down block but the last ends with a downsampler, hence
``n + 1`` slots per block; up blocks have ``n + 1`` resnets.) Inside a transformer model the SGM and
diffusers paths agree (``proj_in``, ``transformer_blocks.k.attn1.to_q``, ``transformer_blocks.k.ff.net.0.proj``,
``...ff.net.2``, ``proj_out``), so only the prefix is renumbered. A kohya key is ``lora_unet_`` plus the
SGM path with dots turned into underscores; text encoders use ``lora_te1_`` / ``lora_te2_`` plus the
transformers module path.

Like sd-scripts' LoRA, the kohya format here names the Linears of the UNet's transformer models and the
CLIP attention and MLP Linears; :func:`check_kohya_targets` refuses other targets before training.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..errors import DashError

KOHYA_PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}

#: Target suffixes of the UNet that the kohya format names: every nn.Linear of SDXL's transformer models.
KOHYA_UNET_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
#: Target suffixes of the CLIP text encoders that the kohya format names (attention and MLP, as sd-scripts).
KOHYA_TEXT_ENCODER_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")

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
    raise DashError(
        f"module '{name}' lies outside the UNet's transformer models, so the kohya format cannot name it: "
        f"drop it from target_modules (kohya targets: {', '.join(KOHYA_UNET_TARGETS)})"
    )


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
    raise DashError(f"'{name}' is not an SGM transformer-model path (input_blocks.i.1, middle_block.1, output_blocks.i.1): use a kohya SDXL LoRA")


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


#: First component of a UNet path from the root: a target starting with one must name a transformer model.
_UNET_ROOTS = ("down_blocks", "mid_block", "up_blocks")


def _has_suffix(target: str, suffixes: tuple[str, ...]) -> bool:
    """True when the last dotted components of ``target`` are one of ``suffixes``."""
    return any(target == s or target.endswith("." + s) for s in suffixes)


def _kohya_target_problem(prefix: str, target: str) -> str | None:
    """Why the kohya format cannot name the modules that ``target`` selects, or None when it can."""
    allowed = KOHYA_UNET_TARGETS if prefix == "unet" else KOHYA_TEXT_ENCODER_TARGETS
    if not _has_suffix(target, allowed):
        return f"'{target}' is not one of the {prefix}'s kohya-named Linears"
    if prefix == "unet" and target.split(".", 1)[0] in _UNET_ROOTS:
        if not (_DOWN.match(target) or _MID.match(target) or _UP.match(target)):
            return f"'{target}' lies outside the UNet's transformer models (down_blocks.N.attentions.M, mid_block.attentions.0, up_blocks.N.attentions.M)"
    return None


def check_kohya_targets(prefix: str, targets: Iterable[str] | str) -> None:
    """Raise :class:`DashError` when a target selects modules the kohya file cannot name.

    ``targets`` are suffixes as ``inject_dash`` matches them (``name == t`` or ``name.endswith("." + t)``),
    or a comma-separated string. A UNet target is accepted when its last components are one of
    :data:`KOHYA_UNET_TARGETS` (``to_q``, ``attn1.to_q``, ``transformer_blocks.0.ff.net.2``) and, when it is a
    path from the UNet's root, that path lies under ``down_blocks.N.attentions.M.``, ``mid_block.attentions.0.``
    or ``up_blocks.N.attentions.M.``. Text-encoder targets must end with one of
    :data:`KOHYA_TEXT_ENCODER_TARGETS`. Needs no model.
    """
    if prefix not in KOHYA_PREFIXES:
        raise DashError(f"unknown component '{prefix}': use one of {', '.join(KOHYA_PREFIXES)}")
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    allowed = KOHYA_UNET_TARGETS if prefix == "unet" else KOHYA_TEXT_ENCODER_TARGETS
    for target in targets:
        problem = _kohya_target_problem(prefix, str(target).strip())
        if problem is not None:
            raise DashError(f"{problem}, so the kohya file cannot hold it: use targets among {', '.join(allowed)}")
