"""The judges' network: a small CNN with a shared trunk, a scene branch and an identity branch.

Input: a batch ``(B, 3, 128, 128)`` of RGB images scaled to [-1, 1]. The trunk (three stride-2
convolutions and two more, down to 64 channels at 16 x 16: a fourth stride would leave a 10-pixel
chest emblem less than a cell) is shared. From it:

* the **scene branch** (one more stride-2 convolution, global average pool, a linear layer) gives the
  ``scene`` logits, and nothing else;
* the **identity branch** (two convolutions at 8 x 8, then *attention pooling*: a learnt per-position
  score, softmaxed over the 64 positions, weights the features, so the pooled 128-d vector is about
  where the object is rather than the whole background) feeds a linear layer per identity head
  (object, colour and the robot parts), and a linear projection of the same vector, L2-normalised,
  is the ``embed_dim``-d **instance embedding**. The scene head never sees the identity branch, and
  the identity branch gets no gradient from the scene loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .labels import IDENTITY_HEADS, LABELS, head_sizes

FORMAT = "dash-diffusion-world-judges-v1"
"""The ``format`` in the metadata of a judges weights file."""
INPUT_SIZE = 128
EMBED_DIM = 64


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AttentionPool(nn.Module):
    """A weighted mean of the feature map's positions, the weights a softmax of a learnt 1x1 score."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(features).flatten(1), dim=1)  # (B, H*W)
        return torch.einsum("bn,bcn->bc", weights, features.flatten(2))


class JudgeNet(nn.Module):
    """The judges' CNN (about 350k parameters). ``forward`` returns a dict: one logits tensor per head
    of ``sizes`` (``scene`` from the scene branch, every other from the identity branch) and
    ``"embedding"``, ``(B, embed_dim)`` unit vectors; :meth:`embed` computes only the embedding."""

    def __init__(self, sizes: dict[str, int] | None = None, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        sizes = dict(sizes or head_sizes(LABELS))
        if "scene" not in sizes or not set(sizes) - {"scene"}:
            raise ValueError(f"JudgeNet needs a 'scene' head and identity heads, got {sorted(sizes)}")
        self.sizes = sizes
        self.trunk = nn.Sequential(
            _conv(3, 16, 2),  # 64x64
            _conv(16, 32, 2),  # 32x32
            _conv(32, 32),
            _conv(32, 64, 2),  # 16x16
            _conv(64, 64),
        )
        self.scene_branch = nn.Sequential(_conv(64, 64, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.scene_head = nn.Linear(64, sizes["scene"])
        self.identity_branch = nn.Sequential(_conv(64, 128, 2), _conv(128, 128))  # 8x8
        self.pool = AttentionPool(128)
        self.project = nn.Linear(128, embed_dim)
        self.identity_heads = nn.ModuleDict({name: nn.Linear(128, n) for name, n in sizes.items() if name != "scene"})

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Only the ``(B, embed_dim)`` L2-normalised instance embeddings."""
        return F.normalize(self.project(self.pool(self.identity_branch(self.trunk(images)))), dim=1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(images)
        identity = self.pool(self.identity_branch(features))
        out = {"scene": self.scene_head(self.scene_branch(features)), "embedding": F.normalize(self.project(identity), dim=1)}
        for name, head in self.identity_heads.items():
            out[name] = head(identity)
        return out


assert set(IDENTITY_HEADS) == set(LABELS) - {"scene"}, "every head but scene is an identity head"
