"""A replay pool of rendered training pairs, so that every render is used a few times.

Drawing a picture costs about as much as a training step spends on it, so :class:`PairPool` keeps
``size`` pairs (two views of one instance, :func:`~.examples.draw_pair`) as uint8 pixels with their
labels, and every step replaces a few random pairs by fresh ones before a batch of pairs is sampled.
With the defaults of :mod:`.train` each picture is seen about four times, under different
augmentations, and the pool keeps changing, so the judges still see tens of thousands of scenes.
"""

from __future__ import annotations

import numpy as np
import torch

from .examples import draw_pair
from .labels import LABELS


class PairPool:
    """``size`` rendered pairs: pixels ``(2*size, 3, 128, 128)`` uint8, one label tensor per head, and
    each picture's instance key (the two pictures of a pair share it)."""

    def __init__(self, size: int, rng: np.random.Generator, image_size: int = 128) -> None:
        self.size = size
        self.image_size = image_size
        self.pixels = torch.zeros(2 * size, 3, image_size, image_size, dtype=torch.uint8)
        self.labels = {name: torch.zeros(2 * size, dtype=torch.long) for name in LABELS}
        self.keys: list[tuple] = [()] * (2 * size)
        for slot in range(size):
            self._fill(slot, rng)

    def _fill(self, slot: int, rng: np.random.Generator) -> None:
        for offset, (image, labels, key) in enumerate(draw_pair(rng, self.image_size)):
            row = 2 * slot + offset
            self.pixels[row] = torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())
            for name in LABELS:
                self.labels[name][row] = labels[name]
            self.keys[row] = key

    def refresh(self, count: int, rng: np.random.Generator) -> None:
        """Replace ``count`` random pairs by freshly drawn ones."""
        for slot in rng.choice(self.size, size=min(count, self.size), replace=False):
            self._fill(int(slot), rng)

    def look_alike_slots(self) -> dict[tuple, list[int]]:
        """The pool's slots grouped by what a class prompt can say of their instance, (class, colour):
        within a group the instances differ only in shape (variant, or a robot's parts)."""
        groups: dict[tuple, list[int]] = {}
        for slot in range(self.size):
            groups.setdefault(self.keys[2 * slot][:2], []).append(slot)
        return groups

    def choose_slots(self, pairs: int, rng: np.random.Generator, look_alike_share: float = 0.0) -> list[int]:
        """``pairs`` distinct random slots. With ``look_alike_share`` > 0, that share of the batch
        comes as look-alike couples: for each of the first ``round(pairs * share / 2)`` slots another
        slot of the same (class, colour) but another instance takes a later place in the batch, where
        the pool has one. The contrastive loss then sees hard negatives (the green van beside a green
        car of another shape) in every batch, not only when chance puts them together."""
        slots = [int(slot) for slot in rng.choice(self.size, size=pairs, replace=False)]
        couples = min(round(pairs * look_alike_share / 2), pairs // 2)
        if not couples:
            return slots
        groups = self.look_alike_slots()
        anchors, partners = slots[:couples], []
        taken = set(anchors)
        for anchor in anchors:
            key = self.keys[2 * anchor]
            options = [slot for slot in groups[key[:2]] if slot not in taken and self.keys[2 * slot] != key]
            if options:
                partners.append(options[int(rng.integers(len(options)))])
                taken.add(partners[-1])
        filler = [slot for slot in slots[couples:] if slot not in taken]
        return anchors + partners + filler[: pairs - couples - len(partners)]

    def sample(self, pairs: int, rng: np.random.Generator, look_alike_share: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """``pairs`` distinct pairs (:meth:`choose_slots`): pictures ``(2*pairs, 3, H, W)`` float in
        [-1, 1], their labels, and instance ids (equal ids for equal instance keys within the batch)."""
        slots = np.array(self.choose_slots(pairs, rng, look_alike_share))
        rows = torch.from_numpy(np.stack([2 * slots, 2 * slots + 1], axis=1).reshape(-1))
        images = self.pixels[rows].float() / 127.5 - 1.0
        ids: dict[tuple, int] = {}
        instances = torch.tensor([ids.setdefault(self.keys[int(row)], len(ids)) for row in rows])
        return images, {name: values[rows] for name, values in self.labels.items()}, instances
