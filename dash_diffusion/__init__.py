"""dash_diffusion: LoRA-Dash personalisation of Stable Diffusion XL.

LoRA-Dash (Si et al., ICLR 2025, arXiv 2409.01035) trains a plain LoRA for ``t`` steps, then selects
the ``s`` task-specific directions of every frozen weight (largest change rate
``|u_i^T dW v_i| / sigma_i``) and learns one scale per direction. Adapters export exactly as a LoRA of
rank ``r + s`` for diffusers, ComfyUI and A1111, plus a native file that keeps the directions.
"""

from __future__ import annotations

from .errors import AdapterMismatchError, DashError, DataError
from .formats.export import DIFFUSERS_WEIGHT_NAME, KOHYA_WEIGHT_NAME, NATIVE_WEIGHT_NAME, fold_to_lora, save_adapter
from .formats.native import load_dash_adapter, read_native_adapter
from .lora_dash.config import TEXT_ENCODER_TARGET_MODULES, UNET_TARGET_MODULES, DashConfig
from .lora_dash.inject import dash_layers, inject_dash, select_directions, trainable_parameters, unwrap_dash
from .lora_dash.layer import DashConv2d, DashLinear

__version__ = "0.1.0"

__all__ = [
    "AdapterMismatchError",
    "DIFFUSERS_WEIGHT_NAME",
    "DashConfig",
    "DashConv2d",
    "DashError",
    "DashLinear",
    "DataError",
    "KOHYA_WEIGHT_NAME",
    "NATIVE_WEIGHT_NAME",
    "TEXT_ENCODER_TARGET_MODULES",
    "UNET_TARGET_MODULES",
    "dash_layers",
    "fold_to_lora",
    "inject_dash",
    "load_dash_adapter",
    "read_native_adapter",
    "save_adapter",
    "select_directions",
    "trainable_parameters",
    "unwrap_dash",
]
