"""The one rule for names the app writes to disk from what a user uploaded or typed: letters, digits and
``._-`` only, every other run of characters becoming ``_``."""

from __future__ import annotations

import re

UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(stem: str, fallback: str, limit: int = 80) -> str:
    """``stem`` cleaned by :data:`UNSAFE_CHARS`, without leading or trailing ``._-``, at most ``limit``
    characters; ``fallback`` when nothing is left (``"my dog!"`` -> ``"my_dog"``)."""
    return UNSAFE_CHARS.sub("_", stem).strip("._-")[:limit] or fallback
