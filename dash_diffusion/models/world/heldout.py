"""The held-out (class, colour, scene) combinations: never in the training split, the whole of "heldout".

They are picked in a fixed order (the SHA-256 of each combination's name, so the set never depends
on a library version) under caps that spread them evenly: about as many per class, per colour and per
scene, and at most two per (class, colour), (class, scene) and (colour, scene) pair, so every class,
colour and scene keeps most of its combinations for training. Teal robots are never held out (their class prompts are the DreamBooth
prior of the demo subject).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter

from .vocab import CLASSES, COLOURS, SCENES

HELDOUT_FRACTION = 0.15
_PAIR_CAP = 2


def _order_key(combo: tuple[str, str, str]) -> str:
    return hashlib.sha256(("heldout-v1:" + ":".join(combo)).encode()).hexdigest()


def _build() -> frozenset[tuple[str, str, str]]:
    combos = [c for c in itertools.product(CLASSES, COLOURS, SCENES) if c[:2] != ("robot", "teal")]
    target = round(HELDOUT_FRACTION * len(CLASSES) * len(COLOURS) * len(SCENES))
    caps = tuple(math.ceil(target / len(values)) + 1 for values in (CLASSES, COLOURS, SCENES))
    counts: Counter = Counter()
    chosen: list[tuple[str, str, str]] = []
    for combo in sorted(combos, key=_order_key):
        keys = [(axis, combo[axis]) for axis in range(3)]
        keys += [(pair, combo[pair[0]], combo[pair[1]]) for pair in ((0, 1), (0, 2), (1, 2))]
        singles_ok = all(counts[key] < caps[key[0]] for key in keys[:3])
        if singles_ok and all(counts[key] < _PAIR_CAP for key in keys[3:]):
            chosen.append(combo)
            counts.update(keys)
            if len(chosen) == target:
                break
    if len(chosen) < target:  # pragma: no cover - only if the vocabulary is changed badly
        raise RuntimeError(f"could only hold out {len(chosen)} of {target} combinations")
    return frozenset(chosen)


HELDOUT: frozenset[tuple[str, str, str]] = _build()
"""The (object, colour, scene) combinations kept out of training."""

HELDOUT_ORDER: tuple[tuple[str, str, str], ...] = tuple(sorted(HELDOUT))
""":data:`HELDOUT` in a fixed order, for sampling."""
