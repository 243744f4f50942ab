"""DreamBooth evaluation of SDXL adapters: DINO, CLIP-I and CLIP-T on the 25 benchmark prompts.

For a subject with real photos ``r_1..r_m``, every row (the base model, then each adapter) renders
the 25 DreamBooth prompts N times from fixed seeds ``seed + 1000 p + i``; each generated image ``g``
is scored with

    DINO   = mean_j cos(DINO(g), DINO(r_j))        (ViT-S/16 DINO CLS embeddings)
    CLIP-I = mean_j cos(CLIP(g), CLIP(r_j))        (CLIP image embeddings)
    CLIP-T = cos(CLIP(g), CLIP_text(prompt))       (prompt without the identifier by default)

and rows are reported as mean ± sample std over images, with n. Modules: :mod:`.prompts` (the
protocol's data), :mod:`.preprocess` and :mod:`.features` (embedders), :mod:`.metrics` (pure
functions), :mod:`.generation`, :mod:`.scores` and :mod:`.summary`, :mod:`.report` and :mod:`.grid`
(outputs), :mod:`.subject`, :mod:`.describe` and :mod:`.record` (``run.json``), :mod:`.config`, :mod:`.runner`,
:mod:`.cli` and :mod:`.tiny_features` (random feature models for offline smoke tests).

``--judges world`` scores adapters of ``builtin:mini-sdxl`` on a held-out subject of the procedural world
with the project's judges instead (subject fidelity, whole-image similarity and prompt fidelity in the
roles of DINO, CLIP-I and CLIP-T, on the subject's 13 world prompts): :mod:`.world_runner`,
:mod:`.world_report` and :mod:`.world_bench`, whose mini-DreamBench shares the scoring.
"""

from __future__ import annotations

from .config import EvalConfig
from .metrics import Stat, cosine_matrix, image_similarity, paired_difference, summarise, text_similarity
from .prompts import LIVE_PROMPTS, OBJECT_PROMPTS, SUBJECT_CLASSES

__all__ = [
    "EvalConfig",
    "LIVE_PROMPTS",
    "OBJECT_PROMPTS",
    "SUBJECT_CLASSES",
    "Stat",
    "cosine_matrix",
    "image_similarity",
    "paired_difference",
    "summarise",
    "text_similarity",
]
