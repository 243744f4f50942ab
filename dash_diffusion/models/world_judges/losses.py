"""The judges' training losses: per-head cross-entropy and a supervised contrastive loss on instances."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .examples import IGNORE, object_frequencies
from .labels import LABELS

TEMPERATURE = 0.1


def balancing_weights() -> dict[str, torch.Tensor]:
    """Class weights for the ``object`` head that undo the over-sampling of robots (the subject and
    its near misses): each class's weight is inversely proportional to how often it is drawn, scaled
    so that a uniform mix of classes has weight 1. A judge trained without them calls too much a robot."""
    frequencies = object_frequencies()
    inverse = torch.tensor([1.0 / frequencies[name] for name in LABELS["object"]])
    return {"object": inverse * len(inverse) / inverse.sum()}


def head_losses(out: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Cross-entropy of each head over the examples it applies to (labels :data:`IGNORE` elsewhere),
    with optional per-class ``weights`` of some heads (a weighted mean); a head that applies to no
    example of the batch is left out."""
    weights = weights or {}
    return {
        name: F.cross_entropy(out[name], target, weight=weights.get(name), ignore_index=IGNORE)
        for name, target in labels.items()
        if (target != IGNORE).any()
    }


def instance_contrast(embedding: torch.Tensor, instance: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) of unit ``embedding`` rows: for each row with
    at least one other row of the same ``instance`` id, minus the mean log-softmax (over all other
    rows, cosines divided by ``temperature``) of those same-instance rows. It pulls pictures of one
    instance together and pushes every other instance, near misses included, away."""
    count = embedding.shape[0]
    self_mask = torch.eye(count, dtype=torch.bool, device=embedding.device)
    logits = (embedding @ embedding.t() / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (instance[:, None] == instance[None, :]) & ~self_mask
    anchors = positive.any(dim=1)
    if not anchors.any():
        return embedding.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(dim=1)[anchors]) / positive.sum(dim=1)[anchors]
    return per_anchor.mean()
