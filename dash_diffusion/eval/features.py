"""The feature models of the metrics, loaded through transformers by hub id or local folder.

* DINO: ``AutoModel`` (``ViTModel`` for ``facebook/dino-vits16``, ViT-S/16 trained with DINO);
  the embedding of an image is the CLS token of ``last_hidden_state`` (after the final layer norm,
  exactly what DINO's own ``model(x)`` returns), ``f = h[:, 0]``.
* CLIP: ``CLIPModel``; ``get_image_features`` (projected pooled vision output) for images and
  ``get_text_features`` (projected EOS state) for texts, with ``CLIPTokenizer`` (padding, truncation
  at the model's text length).

Every embedding is returned L2-normalised, ``f / ||f||_2``, as float64 numpy rows. Images go through
:mod:`.preprocess`. A model that cannot be loaded raises one :class:`DashError` line that says how to
pass a local folder instead.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from dash_diffusion.errors import DashError

from .preprocess import ImageTransform, clip_transform, dino_transform

DEFAULT_DINO_MODEL = "facebook/dino-vits16"
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
BATCH_SIZE = 32


@dataclass
class FeatureModelInfo:
    """What a metric was computed with (recorded in ``run.json``)."""

    role: str
    name: str
    source: str
    model_class: str
    commit: str | None
    transform: dict[str, object] = field(default_factory=dict)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _load_error(role: str, option: str, name: str, error: Exception) -> DashError:
    local = Path(name).expanduser()
    if local.is_dir():
        return DashError(
            f"--{option} folder '{name}' is not a transformers {role} model ({type(error).__name__}: {(str(error).splitlines() or [''])[0][:160]}); "
            f"pass a folder written by save_pretrained or 'hf download'"
        )
    if _looks_like_path(name) or local.exists():
        return DashError(f"--{option} folder '{name}' does not exist: check the path, or pass a hub id such as {_default(role)}")
    short = name.rsplit("/", 1)[-1]
    return DashError(
        f"cannot load the {role} model '{name}' ({type(error).__name__}): without hub access download it where there is "
        f"access ('hf download {name} --local-dir models/{short}') and pass --{option} models/{short}"
    )


def _default(role: str) -> str:
    return DEFAULT_DINO_MODEL if role == "DINO" else DEFAULT_CLIP_MODEL


def _source(name: str) -> str:
    local = Path(name).expanduser()
    return str(local.resolve()) if local.is_dir() else name


def _commit(config: Any) -> str | None:
    return getattr(config, "_commit_hash", None)


def _preprocessor_folder(name: str) -> Path | None:
    """The folder holding ``preprocessor_config.json`` for a local folder or an already cached hub model."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    try:
        from transformers.utils import cached_file

        found = cached_file(name, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    except Exception:  # noqa: BLE001 - no processor config simply means the published defaults
        return None
    return Path(found).parent if found else None


def _check_complete(option: str, name: str, loading: dict[str, Any]) -> None:
    """Refuse a checkpoint whose weights do not cover the model (they would be random)."""
    missing = sorted(key for key in loading.get("missing_keys", ()) if not key.startswith("pooler."))
    if missing:
        raise DashError(f"--{option} '{name}' lacks {len(missing)} weights of its model (e.g. {missing[0]}): pass a complete checkpoint folder or hub id")


def _l2(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _pooled(output: Any) -> Any:
    """transformers 4 returns a tensor from ``get_*_features``; transformers 5 an output whose pooler_output is it."""
    return output if hasattr(output, "shape") else output.pooler_output


def _image_size(config: Any, fallback: int = 224) -> int:
    size = getattr(config, "image_size", fallback)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


class DinoEmbedder:
    """CLS embeddings of a DINO ViT."""

    def __init__(self, model: Any, transform: ImageTransform, device: str, info: FeatureModelInfo) -> None:
        self.model, self.transform, self.device, self.info = model, transform, device, info

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(images), BATCH_SIZE):
                pixels = torch.from_numpy(self.transform(images[start : start + BATCH_SIZE])).to(self.device)
                rows.append(self.model(pixel_values=pixels).last_hidden_state[:, 0].float().cpu().numpy())
        return _l2(np.concatenate(rows))


class ClipEmbedder:
    """Projected CLIP image and text embeddings."""

    def __init__(self, model: Any, tokenizer: Any, transform: ImageTransform, device: str, info: FeatureModelInfo) -> None:
        self.model, self.tokenizer, self.transform, self.device, self.info = model, tokenizer, transform, device, info
        self.max_length = min(int(tokenizer.model_max_length), int(model.config.text_config.max_position_embeddings))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(images), BATCH_SIZE):
                pixels = torch.from_numpy(self.transform(images[start : start + BATCH_SIZE])).to(self.device)
                rows.append(_pooled(self.model.get_image_features(pixel_values=pixels)).float().cpu().numpy())
        return _l2(np.concatenate(rows))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH_SIZE):
                tokens = self.tokenizer(list(texts[start : start + BATCH_SIZE]), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
                tokens = {key: value.to(self.device) for key, value in tokens.items() if key in ("input_ids", "attention_mask")}
                rows.append(_pooled(self.model.get_text_features(**tokens)).float().cpu().numpy())
        return _l2(np.concatenate(rows))


def load_dino(name: str, device: str = "cpu") -> DinoEmbedder:
    """A DINO embedder from a hub id or local folder (float32, eval mode, on ``device``)."""
    import torch
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(name)
        if config.model_type == "clip":
            raise DashError(f"--dino_model '{name}' is a CLIP model, not a DINO vision transformer: pass one such as {DEFAULT_DINO_MODEL}")
        extra = {"add_pooling_layer": False} if config.model_type == "vit" else {}
        model, loading = AutoModel.from_pretrained(name, output_loading_info=True, **extra)
    except (OSError, ValueError, KeyError) as error:
        raise _load_error("DINO", "dino_model", name, error) from error
    if "pixel_values" not in inspect.signature(model.forward).parameters:
        raise DashError(f"--dino_model '{name}' is a {config.model_type} model, not a vision transformer: pass a DINO ViT such as {DEFAULT_DINO_MODEL}")
    _check_complete("dino_model", name, loading)
    model.to(device=device, dtype=torch.float32).eval()
    transform = dino_transform(_image_size(config))
    info = FeatureModelInfo("DINO", name, _source(name), type(model).__name__, _commit(config), transform.describe())
    return DinoEmbedder(model, transform, device, info)


def load_clip(name: str, device: str = "cpu") -> ClipEmbedder:
    """A CLIP embedder (model + tokenizer) from a hub id or local folder (float32, eval mode, on ``device``)."""
    import torch
    from transformers import AutoConfig, CLIPModel, CLIPTokenizer

    try:
        model_type = AutoConfig.from_pretrained(name).model_type
        if model_type != "clip":
            raise DashError(f"--clip_model '{name}' is a {model_type} model, not CLIP: pass one such as {DEFAULT_CLIP_MODEL}")
        model, loading = CLIPModel.from_pretrained(name, output_loading_info=True)
        tokenizer = CLIPTokenizer.from_pretrained(name)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _load_error("CLIP", "clip_model", name, error) from error
    _check_complete("clip_model", name, loading)
    model.to(device=device, dtype=torch.float32).eval()
    transform = clip_transform(_image_size(model.config.vision_config), _preprocessor_folder(name))
    info = FeatureModelInfo("CLIP", name, _source(name), type(model).__name__, _commit(model.config), transform.describe())
    return ClipEmbedder(model, tokenizer, transform, device, info)
