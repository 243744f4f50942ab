"""One-line errors shared by the mini-DreamBench modules (names of subjects and methods)."""

from __future__ import annotations

from collections.abc import Iterable

from dash_diffusion.errors import DashError


def unknown_name(kind: str, name: str, known: Iterable[str], option: str) -> DashError:
    """``unknown <kind> 'x': choose among a, b, c (<option>)``."""
    return DashError(f"unknown {kind} {name!r}: choose among {', '.join(known)} ({option})")


def unknown_subject(name: str) -> DashError:
    from dash_diffusion.models.world import SUBJECTS

    return unknown_name("subject", name, SUBJECTS, "the world's held-out subjects")
