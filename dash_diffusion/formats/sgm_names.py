"""Module names as adapter files spell them: kohya/SGM names of the SDXL UNet (ComfyUI, A1111,
sd-scripts) and canonical CLIP text-encoder paths.

The SGM UNet numbers its blocks flatly. With ``n = layers_per_block`` (2 for SDXL) and ``slots = n + 1``::

    down_blocks.b.attentions.a             <->  input_blocks.(b * slots + a + 1).1
    down_blocks.b.resnets.r.<leaf>         <->  input_blocks.(b * slots + r + 1).0.<sgm leaf>
    down_blocks.b.downsamplers.0.conv      <->  input_blocks.(b * slots + slots).0.op
    mid_block.resnets.0.<leaf>             <->  middle_block.0.<sgm leaf>
    mid_block.attentions.0                 <->  middle_block.1
    mid_block.resnets.1.<leaf>             <->  middle_block.2.<sgm leaf>
    up_blocks.b.resnets.r.<leaf>           <->  output_blocks.(b * slots + r).0.<sgm leaf>
    up_blocks.b.attentions.a               <->  output_blocks.(b * slots + a).1
    up_blocks.b.upsamplers.0.conv          <->  output_blocks.(b * slots + n).K.conv

(``input_blocks.0`` is conv_in and every down block but the last ends with a downsampler, hence
``slots`` places per block; up blocks have ``n + 1`` resnets.) The resnet leaves are renamed
``conv1 -> in_layers.2``, ``conv2 -> out_layers.3``, ``time_emb_proj -> emb_layers.1`` and
``conv_shortcut -> skip_connection``. An upsampler sits after the resnet (``.0``) and, when the up block has
attentions, after the transformer model (``.1``), so ``K`` is 2 in an up block with attentions and 1 in one
without. The name alone does not say which, so the functions take ``attention_up_blocks``: the indices of the
up blocks with attentions (:func:`attention_up_blocks_of` reads them from a UNet config; the default,
:data:`SDXL_ATTENTION_UP_BLOCKS`, is SDXL's ``{0, 1}``). Inside a transformer model the SGM and diffusers
paths agree (``proj_in``, ``transformer_blocks.k.attn1.to_q``, ``transformer_blocks.k.ff.net.0.proj``,
``...ff.net.2``, ``proj_out``), so only the prefix is renumbered. A kohya key is ``lora_unet_`` plus the
SGM path with dots turned into underscores; text encoders use ``lora_te1_`` / ``lora_te2_`` plus the
transformers module path.

Like sd-scripts' LoRA (with ``conv_dim`` set for the resnet and sampler layers), the kohya format here names
the Linears of the UNet's transformer models, the Linear and Conv2d layers of its resnets, downsamplers and
upsamplers, and the CLIP attention and MLP Linears; :func:`check_kohya_targets` refuses other targets
before training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import DashError

KOHYA_PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}

#: Target suffixes of the UNet that the kohya format names: every nn.Linear of SDXL's transformer models.
KOHYA_UNET_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
#: Target suffixes of the UNet's resnets and samplers that the kohya format names: the Linear and Conv2d
#: children of ResnetBlock2D, Downsample2D and Upsample2D (what sd-scripts' LoRA wraps with ``conv_dim`` set).
KOHYA_UNET_RESNET_TARGETS: tuple[str, ...] = ("conv1", "conv2", "conv_shortcut", "time_emb_proj", "downsamplers.0.conv", "upsamplers.0.conv")
#: Target suffixes of the CLIP text encoders that the kohya format names (attention and MLP, as sd-scripts).
KOHYA_TEXT_ENCODER_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")

#: Up blocks with attentions in SDXL's UNet (up types CrossAttnUpBlock2D, CrossAttnUpBlock2D, UpBlock2D).
SDXL_ATTENTION_UP_BLOCKS: frozenset[int] = frozenset({0, 1})

#: diffusers leaf of a ResnetBlock2D -> its SGM (ResBlock) path.
RESNET_TO_SGM: dict[str, str] = {
    "conv1": "in_layers.2",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
SGM_TO_RESNET: dict[str, str] = {sgm: leaf for leaf, sgm in RESNET_TO_SGM.items()}

_LEAF = "(" + "|".join(RESNET_TO_SGM) + ")"
_SGM_LEAF = "(" + "|".join(re.escape(s) for s in SGM_TO_RESNET) + ")"

_DOWN = re.compile(r"^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$")
_MID = re.compile(r"^mid_block\.attentions\.0\.(.+)$")
_UP = re.compile(r"^up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$")
_DOWN_RESNET = re.compile(rf"^down_blocks\.(\d+)\.resnets\.(\d+)\.{_LEAF}$")
_MID_RESNET = re.compile(rf"^mid_block\.resnets\.([01])\.{_LEAF}$")
_UP_RESNET = re.compile(rf"^up_blocks\.(\d+)\.resnets\.(\d+)\.{_LEAF}$")
_DOWNSAMPLER = re.compile(r"^down_blocks\.(\d+)\.downsamplers\.0\.conv$")
_UPSAMPLER = re.compile(r"^up_blocks\.(\d+)\.upsamplers\.0\.conv$")

_INPUT = re.compile(r"^input_blocks\.(\d+)\.1\.(.+)$")
_MIDDLE = re.compile(r"^middle_block\.1\.(.+)$")
_OUTPUT = re.compile(r"^output_blocks\.(\d+)\.1\.(.+)$")
_INPUT_RESNET = re.compile(rf"^input_blocks\.(\d+)\.0\.{_SGM_LEAF}$")
_INPUT_OP = re.compile(r"^input_blocks\.(\d+)\.0\.op$")
_MIDDLE_RESNET = re.compile(rf"^middle_block\.([02])\.{_SGM_LEAF}$")
_OUTPUT_RESNET = re.compile(rf"^output_blocks\.(\d+)\.0\.{_SGM_LEAF}$")
_OUTPUT_CONV = re.compile(r"^output_blocks\.(\d+)\.([12])\.conv$")


def attention_up_blocks_of(config: Mapping[str, Any] | Any) -> frozenset[int]:
    """The indices of the up blocks with attentions, read from a UNet config (``unet.config`` or a dict).

    An up block has attentions when its entry of ``up_block_types`` contains ``"CrossAttn"``: SDXL's
    ``("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")`` gives ``{0, 1}``.
    """
    types = config.get("up_block_types") if isinstance(config, Mapping) else getattr(config, "up_block_types", None)
    if types is None:
        raise DashError("the config has no 'up_block_types': pass a UNet2DConditionModel config (unet.config)")
    return frozenset(i for i, kind in enumerate(types) if "CrossAttn" in str(kind))


def _up_blocks_with_attentions(attention_up_blocks: frozenset[int] | None) -> frozenset[int]:
    """``attention_up_blocks``, or SDXL's when None."""
    return SDXL_ATTENTION_UP_BLOCKS if attention_up_blocks is None else frozenset(attention_up_blocks)


def _upsampler_slot(block: int, attention_up_blocks: frozenset[int] | None) -> int:
    """Where an up block's upsampler sits in its SGM output block: 2 after resnet and attention, else 1."""
    return 2 if block in _up_blocks_with_attentions(attention_up_blocks) else 1


def _check_index(name: str, kind: str, index: int, count: int, layers_per_block: int) -> None:
    """Raise when ``index`` is not below ``count`` (a larger one would alias another SGM slot)."""
    if index >= count:
        raise DashError(
            f"module '{name}' has {kind} {index} but a UNet with layers_per_block {layers_per_block} has {count} per block: "
            f"pass the model's layers_per_block"
        )


def _unet_transformer_to_sgm(name: str, n: int) -> str | None:
    """``down_blocks.b.attentions.a.X`` -> ``input_blocks.(b*slots + a + 1).1.X`` (mid and up alike), else None."""
    slots = n + 1
    if m := _DOWN.match(name):
        _check_index(name, "attention", int(m[2]), n, n)
        return f"input_blocks.{int(m[1]) * slots + int(m[2]) + 1}.1.{m[3]}"
    if m := _MID.match(name):
        return f"middle_block.1.{m[1]}"
    if m := _UP.match(name):
        _check_index(name, "attention", int(m[2]), slots, n)
        return f"output_blocks.{int(m[1]) * slots + int(m[2])}.1.{m[3]}"
    return None


def _unet_resnet_to_sgm(name: str, n: int, attention_up_blocks: frozenset[int] | None) -> str | None:
    """Resnet and sampler layers to SGM paths (table in the module docstring), else None."""
    slots = n + 1
    if m := _DOWN_RESNET.match(name):
        _check_index(name, "resnet", int(m[2]), n, n)
        return f"input_blocks.{int(m[1]) * slots + int(m[2]) + 1}.0.{RESNET_TO_SGM[m[3]]}"
    if m := _DOWNSAMPLER.match(name):
        return f"input_blocks.{int(m[1]) * slots + slots}.0.op"
    if m := _MID_RESNET.match(name):
        return f"middle_block.{2 * int(m[1])}.{RESNET_TO_SGM[m[2]]}"
    if m := _UP_RESNET.match(name):
        _check_index(name, "resnet", int(m[2]), slots, n)
        return f"output_blocks.{int(m[1]) * slots + int(m[2])}.0.{RESNET_TO_SGM[m[3]]}"
    if m := _UPSAMPLER.match(name):
        block = int(m[1])
        return f"output_blocks.{block * slots + n}.{_upsampler_slot(block, attention_up_blocks)}.conv"
    return None


def unet_to_sgm(name: str, layers_per_block: int, *, attention_up_blocks: frozenset[int] | None = None) -> str:
    """The SGM path of a diffusers UNet module (table in the module docstring), for SDXL:

    ``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`` -> ``input_blocks.4.1.transformer_blocks.0.attn1.to_q``,
    ``down_blocks.1.resnets.0.conv1`` -> ``input_blocks.4.0.in_layers.2``,
    ``up_blocks.0.upsamplers.0.conv`` -> ``output_blocks.2.2.conv``.

    ``attention_up_blocks`` (the up blocks with attentions, :func:`attention_up_blocks_of`; SDXL's when None)
    only decides an upsampler's slot.
    """
    sgm = _unet_transformer_to_sgm(name, layers_per_block)
    if sgm is None:
        sgm = _unet_resnet_to_sgm(name, layers_per_block, attention_up_blocks)
    if sgm is None:
        raise DashError(
            f"module '{name}' lies outside the UNet's transformer models, resnets and samplers, so the kohya format cannot name it: "
            f"drop it from target_modules (kohya targets: {', '.join(KOHYA_UNET_TARGETS + KOHYA_UNET_RESNET_TARGETS)})"
        )
    return sgm


def _input_position(name: str, index: int, slots: int) -> tuple[int, int]:
    """``input_blocks.index`` -> (down block, place in it); place ``slots - 1`` is the downsampler."""
    if index < 1:
        raise DashError(f"'{name}' is conv_in, which the kohya format does not name here: use a kohya SDXL LoRA")
    return divmod(index - 1, slots)


def _sgm_transformer_to_unet(name: str, n: int) -> str | None:
    """``input_blocks.i.1.X`` / ``middle_block.1.X`` / ``output_blocks.i.1.X`` -> the attentions path, else None."""
    slots = n + 1
    if m := _INPUT.match(name):
        block, position = _input_position(name, int(m[1]), slots)
        _check_index(name, "attention", position, n, n)
        return f"down_blocks.{block}.attentions.{position}.{m[2]}"
    if m := _MIDDLE.match(name):
        return f"mid_block.attentions.0.{m[1]}"
    if m := _OUTPUT.match(name):
        block, position = divmod(int(m[1]), slots)
        return f"up_blocks.{block}.attentions.{position}.{m[2]}"
    return None


def _sgm_upsampler_to_unet(name: str, n: int, attention_up_blocks: frozenset[int] | None) -> str | None:
    """``output_blocks.(b*slots + n).K.conv`` -> ``up_blocks.b.upsamplers.0.conv``, checking K, else None."""
    if not (m := _OUTPUT_CONV.match(name)):
        return None
    block, position = divmod(int(m[1]), n + 1)
    slot = _upsampler_slot(block, attention_up_blocks)
    if position != n or int(m[2]) != slot:
        has = "has" if slot == 2 else "has no"
        raise DashError(
            f"'{name}' is no upsampler: up block {block} {has} attentions, so its upsampler is "
            f"output_blocks.{block * (n + 1) + n}.{slot}.conv; pass the model's layers_per_block and attention_up_blocks"
        )
    return f"up_blocks.{block}.upsamplers.0.conv"


def _sgm_resnet_to_unet(name: str, n: int) -> str | None:
    """SGM resnet leaves and ``.op`` downsamplers -> diffusers paths (table in the module docstring), else None."""
    slots = n + 1
    if m := _INPUT_OP.match(name):
        block, position = _input_position(name, int(m[1]), slots)
        if position != n:
            raise DashError(f"'{name}' is no downsampler with layers_per_block {n}: pass the model's layers_per_block")
        return f"down_blocks.{block}.downsamplers.0.conv"
    if m := _INPUT_RESNET.match(name):
        block, position = _input_position(name, int(m[1]), slots)
        _check_index(name, "resnet", position, n, n)
        return f"down_blocks.{block}.resnets.{position}.{SGM_TO_RESNET[m[2]]}"
    if m := _MIDDLE_RESNET.match(name):
        return f"mid_block.resnets.{int(m[1]) // 2}.{SGM_TO_RESNET[m[2]]}"
    if m := _OUTPUT_RESNET.match(name):
        block, position = divmod(int(m[1]), slots)
        return f"up_blocks.{block}.resnets.{position}.{SGM_TO_RESNET[m[2]]}"
    return None


def sgm_to_unet(name: str, layers_per_block: int, *, attention_up_blocks: frozenset[int] | None = None) -> str:
    """Inverse of :func:`unet_to_sgm` for the same ``layers_per_block`` and ``attention_up_blocks``.

    ``output_blocks.i.K.conv`` is an upsampler (a transformer model has no ``conv`` child); it must sit in the
    last place of its block with ``K`` 2 when that up block has attentions and 1 when it has none.
    """
    unet = _sgm_upsampler_to_unet(name, layers_per_block, attention_up_blocks)
    if unet is None:
        unet = _sgm_transformer_to_unet(name, layers_per_block)
    if unet is None:
        unet = _sgm_resnet_to_unet(name, layers_per_block)
    if unet is None:
        raise DashError(
            f"'{name}' is not an SGM transformer-model, resnet or sampler path (input_blocks.i.0/1, middle_block.0/1/2, "
            f"output_blocks.i.0/1/2): use a kohya SDXL LoRA"
        )
    return unet


def canonical_text_encoder_path(name: str) -> str:
    """The CLIP module path as every LoRA tool spells it: ``text_model.encoder.layers.0.self_attn.q_proj``.

    transformers 5 dropped the ``text_model`` level of ``CLIPTextModel`` (``encoder.layers.0...``) but not
    of ``CLIPTextModelWithProjection``; files always carry the canonical spelling.
    """
    return name if name.startswith("text_model.") else f"text_model.{name}"


def file_module_name(prefix: str, name: str) -> str:
    """How adapter files name module ``name`` of component ``prefix`` (canonical CLIP paths for text encoders)."""
    return name if prefix == "unet" else canonical_text_encoder_path(name)


def kohya_module_key(prefix: str, name: str, layers_per_block: int = 2, *, attention_up_blocks: frozenset[int] | None = None) -> str:
    """The kohya key stem of a module: ``lora_unet_input_blocks_4_1_..._to_q``, ``lora_unet_input_blocks_4_0_in_layers_2``
    or ``lora_te1_text_model_...``. ``layers_per_block`` and ``attention_up_blocks`` (SDXL's when None) describe
    the UNet (:func:`attention_up_blocks_of` reads the latter from ``unet.config``); text encoders ignore them."""
    if prefix == "unet":
        path = unet_to_sgm(name, layers_per_block, attention_up_blocks=attention_up_blocks)
    else:
        path = canonical_text_encoder_path(name)
    return KOHYA_PREFIXES[prefix] + path.replace(".", "_")


#: First component of a UNet path from the root: a target starting with one must name a transformer model's
#: Linear or a resnet or sampler layer.
_UNET_ROOTS = ("down_blocks", "mid_block", "up_blocks")


def _has_suffix(target: str, suffixes: tuple[str, ...]) -> bool:
    """True when the last dotted components of ``target`` are one of ``suffixes``."""
    return any(target == s or target.endswith("." + s) for s in suffixes)


def _names_transformer_linear(target: str) -> bool:
    """A root path under ``down_blocks.N.attentions.M`` / ``mid_block.attentions.0`` / ``up_blocks.N.attentions.M``
    ending with a transformer Linear."""
    return bool(_DOWN.match(target) or _MID.match(target) or _UP.match(target)) and _has_suffix(target, KOHYA_UNET_TARGETS)


def _names_resnet_layer(target: str) -> bool:
    """A root path to a resnet leaf (``down_blocks.N.resnets.M.conv1``, ``mid_block.resnets.M.time_emb_proj``, ...)
    or a sampler conv (``down_blocks.N.downsamplers.0.conv``, ``up_blocks.N.upsamplers.0.conv``)."""
    patterns = (_DOWN_RESNET, _MID_RESNET, _UP_RESNET, _DOWNSAMPLER, _UPSAMPLER)
    return any(p.match(target) for p in patterns)


def _kohya_target_problem(prefix: str, target: str) -> str | None:
    """Why the kohya format cannot name the modules that ``target`` selects, or None when it can."""
    allowed = KOHYA_UNET_TARGETS + KOHYA_UNET_RESNET_TARGETS if prefix == "unet" else KOHYA_TEXT_ENCODER_TARGETS
    if not _has_suffix(target, allowed):
        return f"'{target}' is not one of the {prefix}'s kohya-named layers"
    from_root = prefix == "unet" and target.split(".", 1)[0] in _UNET_ROOTS
    if from_root and not (_names_transformer_linear(target) or _names_resnet_layer(target)):
        return (
            f"'{target}' lies outside the UNet's transformer models (down_blocks.N.attentions.M, mid_block.attentions.0, "
            f"up_blocks.N.attentions.M), resnets (down_blocks.N.resnets.M, mid_block.resnets.M, up_blocks.N.resnets.M) "
            f"and samplers (down_blocks.N.downsamplers.0, up_blocks.N.upsamplers.0)"
        )
    return None


def check_kohya_targets(prefix: str, targets: Iterable[str] | str) -> None:
    """Raise :class:`DashError` when a target selects modules the kohya file cannot name.

    ``targets`` are suffixes as ``inject_dash`` matches them (``name == t`` or ``name.endswith("." + t)``),
    or a comma-separated string. A UNet target is accepted when its last components are one of
    :data:`KOHYA_UNET_TARGETS` (``to_q``, ``attn1.to_q``, ``transformer_blocks.0.ff.net.2``) or
    :data:`KOHYA_UNET_RESNET_TARGETS` (``conv1``, ``resnets.0.time_emb_proj``, ``downsamplers.0.conv``) and,
    when it is a path from the UNet's root, a transformer Linear lies under ``down_blocks.N.attentions.M.``,
    ``mid_block.attentions.0.`` or ``up_blocks.N.attentions.M.`` and a resnet or sampler layer under
    ``down_blocks.N.resnets.M.``, ``mid_block.resnets.M.`` (M 0 or 1), ``up_blocks.N.resnets.M.``,
    ``down_blocks.N.downsamplers.0.`` or ``up_blocks.N.upsamplers.0.``. Text-encoder targets must end with one
    of :data:`KOHYA_TEXT_ENCODER_TARGETS`. Needs no model.
    """
    if prefix not in KOHYA_PREFIXES:
        raise DashError(f"unknown component '{prefix}': use one of {', '.join(KOHYA_PREFIXES)}")
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    allowed = KOHYA_UNET_TARGETS + KOHYA_UNET_RESNET_TARGETS if prefix == "unet" else KOHYA_TEXT_ENCODER_TARGETS
    for target in targets:
        problem = _kohya_target_problem(prefix, str(target).strip())
        if problem is not None:
            raise DashError(f"{problem}, so the kohya file cannot hold it: use targets among {', '.join(allowed)}")
