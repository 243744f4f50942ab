"""Scoring pictures of the world with the trained judges (the role CLIP and DINO play in DreamBooth).

>>> judges = load_judges()
>>> judges.classify([image])          # [{'object': 'robot', 'scene': 'beach', 'colour': 'teal'}]
>>> judges.embed([image]).shape       # torch.Size([1, 64]), unit rows
>>> instance_similarity(judges, generated, references)   # mean cosine, the DINO-style score

Images may have any size and aspect: each is resized so that its shorter side is 128 px and
centre-cropped to 128 x 128 (:func:`~.preprocess.square`). The network runs in eval mode, in float32
on the CPU, without gradients, in fixed-size chunks, so the same images always get the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from ...errors import DashError
from ...formats.safetensors_io import read_safetensors
from .labels import CLASSIFY_HEADS, head_sizes
from .network import FORMAT, JudgeNet
from .preprocess import to_batch

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "judges.safetensors"
"""The weights shipped with the package."""
CHUNK = 64
_HOW = "make it with `python -m dash_diffusion.models.world_judges.train --out {path}`"


class Judges:
    """A trained :class:`~.network.JudgeNet` with its label lists."""

    def __init__(self, model: JudgeNet, labels: dict[str, tuple[str, ...]], path: Path | None = None) -> None:
        self.model = model.eval().float()
        self.labels = labels
        self.path = path

    @torch.no_grad()
    def _run(self, images: Sequence[Image.Image], embed_only: bool) -> list[dict[str, torch.Tensor]]:
        outs = []
        for start in range(0, len(images), CHUNK):
            batch = to_batch(images[start : start + CHUNK])
            outs.append({"embedding": self.model.embed(batch)} if embed_only else self.model(batch))
        return outs

    def classify(self, images: Sequence[Image.Image]) -> list[dict[str, str]]:
        """The most likely ``object``, ``scene`` and ``colour`` (names) of each image."""
        results: list[dict[str, str]] = []
        for out in self._run(list(images), embed_only=False):
            best = {name: out[name].argmax(dim=1).tolist() for name in CLASSIFY_HEADS}
            for row in range(len(best["object"])):
                results.append({name: self.labels[name][best[name][row]] for name in CLASSIFY_HEADS})
        return results

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(N, D)`` L2-normalised instance embeddings (about the object, not the background)."""
        outs = self._run(list(images), embed_only=True)
        if not outs:
            return torch.zeros(0, self.model.project.out_features)
        return torch.cat([out["embedding"] for out in outs])


def instance_similarity(judges: Judges, images: Sequence[Image.Image], references: Sequence[Image.Image]) -> float:
    """Mean cosine similarity of every (image, reference) pair's instance embeddings: near 1 when the
    images show the references' object instance, lower for another instance or class."""
    if not images or not references:
        raise ValueError("instance_similarity needs at least one image and one reference")
    return float((judges.embed(images) @ judges.embed(references).t()).mean())


def _mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """A short description of how ``found`` tensors differ from the network's, or ``""``."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = sorted(name for name in set(expected) & set(found) if expected[name].shape != found[name].shape)
    parts = [f"{len(names)} {kind}, e.g. {names[0]}" for kind, names in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)) if names]
    return "; ".join(parts)


def load_judges(path: str | Path | None = None) -> Judges:
    """The judges in ``path`` (default: the shipped :data:`DEFAULT_WEIGHTS`); a missing or unreadable
    file raises a one-line :class:`~dash_diffusion.errors.DashError` naming it and how to make it."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    how = _HOW.format(path=path)
    if not path.is_file():
        raise DashError(f"judges weights '{path}' do not exist: {how}")
    try:
        tensors, metadata = read_safetensors(path)
    except DashError as error:
        reason = " ".join(str(error.__cause__ or error).split())
        raise DashError(f"judges weights '{path}' cannot be read as safetensors ({reason}): {how}") from error
    if metadata.get("format") != FORMAT:
        raise DashError(f"'{path}' is not a world judges file (format {metadata.get('format')!r}, expected {FORMAT!r}): {how}")
    try:
        labels = {name: tuple(values) for name, values in json.loads(metadata["labels"]).items()}
        model = JudgeNet(head_sizes(labels), int(metadata["embed_dim"]))
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise DashError(f"judges weights '{path}' have bad metadata ({type(error).__name__}: {error}): {how}") from error
    problem = _mismatch(model.state_dict(), tensors)
    if problem:
        raise DashError(f"judges weights '{path}' do not fit the judges network ({problem}): {how}")
    model.load_state_dict(tensors, strict=True)
    return Judges(model, labels, path)
