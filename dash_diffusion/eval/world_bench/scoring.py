"""DreamBooth's three metrics for pictures of the procedural world, with the project's judges.

For a generated image ``g`` of a prompt asking for attributes ``A`` (object, plus scene and/or colour,
:attr:`~.prompts.WorldPrompt.asks`) and reference renders ``r_1..r_m`` of the subject:

* **subject fidelity** (DINO's role): ``mean_j cos(e(g), e(r_j))`` with ``e`` the judges' instance
  embedding (:meth:`~dash_diffusion.models.world_judges.Judges.embed`, trained to ignore pose, light
  and background);
* **whole-image similarity** (CLIP-I's role): ``mean_j cos(w(g), w(r_j))`` with ``w`` the judges'
  two pooled feature vectors, the scene branch's (about the background) and the identity branch's
  attention-pooled one (about the object), each L2-normalised, concatenated and normalised again:
  half background, half object, as a general image embedding sees a photo;
* **prompt fidelity** (CLIP-T's role): ``(1/|A|) sum_{a in A} [judge_a(g) == A_a]``, the share of the
  asked-for attributes the judges' classifier finds (object, scene, colour: ``object_ok``,
  ``scene_ok``, ``colour_ok`` are kept per image; ``None`` where the prompt does not ask).

Cosines are raw values in [-1, 1]. The judges run in eval mode on the CPU in float32, so the same
images always get the same scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dash_diffusion.eval.metrics import image_similarity
from dash_diffusion.models.world_judges import Judges
from dash_diffusion.models.world_judges.judge import CHUNK
from dash_diffusion.models.world_judges.preprocess import to_batch

from .prompts import WorldPrompt

METRICS: tuple[str, ...] = ("subject_fidelity", "whole_image", "prompt_fidelity")
METRIC_LABELS: dict[str, str] = {"subject_fidelity": "subject fidelity", "whole_image": "whole-image sim.", "prompt_fidelity": "prompt fidelity"}
METRIC_ROLES: dict[str, str] = {"subject_fidelity": "DINO", "whole_image": "CLIP-I", "prompt_fidelity": "CLIP-T"}
ATTRIBUTES: tuple[str, ...] = ("object", "scene", "colour")


@dataclass(frozen=True)
class WorldScore:
    """One generated image of one row, its prompt and its scores."""

    row: str
    prompt_index: int
    image_index: int
    seed: int
    kind: str
    prompt: str
    file: str
    subject_fidelity: float
    whole_image: float
    prompt_fidelity: float
    object_ok: bool
    scene_ok: bool | None
    colour_ok: bool | None

    def metric(self, name: str) -> float:
        return float(getattr(self, name))

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def whole_image_embeddings(judges: Judges, images: Sequence[Image.Image]) -> np.ndarray:
    """``(N, 64 + 128)`` unit rows: [scene-branch features / norm, identity features / norm] / sqrt 2."""
    model, rows = judges.model, []
    for start in range(0, len(images), CHUNK):
        trunk = model.trunk(to_batch(images[start : start + CHUNK]))  # (B, 64, 16, 16)
        background = F.normalize(model.scene_branch(trunk), dim=1)  # (B, 64)
        subject = F.normalize(model.pool(model.identity_branch(trunk)), dim=1)  # (B, 128)
        rows.append(F.normalize(torch.cat([background, subject], dim=1), dim=1).double().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def instance_embeddings(judges: Judges, images: Sequence[Image.Image]) -> np.ndarray:
    """The judges' instance embeddings as float64 rows."""
    return judges.embed(list(images)).double().numpy()


def prompt_checks(verdict: dict[str, str], prompt: WorldPrompt) -> dict[str, bool | None]:
    """``<attribute>_ok`` for object, scene and colour: whether the judged value is the asked one
    (``None`` for an attribute the prompt does not name)."""
    asked = prompt.asks
    return {f"{name}_ok": (verdict[name] == asked[name]) if name in asked else None for name in ATTRIBUTES}


class WorldScorer:
    """The judges and the embedded reference renders of one subject."""

    def __init__(self, judges: Judges, references: Sequence[Image.Image]) -> None:
        if not references:
            raise ValueError("WorldScorer needs at least one reference image")
        self.judges = judges
        self.instance_references = instance_embeddings(judges, references)
        self.whole_references = whole_image_embeddings(judges, references)

    def score(self, row: str, images: Sequence[Image.Image], prompts: Sequence[WorldPrompt], jobs: Sequence, files: Sequence[str]) -> list[WorldScore]:
        """Scores of ``images`` (image ``k`` generated for ``prompts[k]`` by ``jobs[k]``, an
        :class:`~dash_diffusion.eval.generation.ImageJob`, saved as ``files[k]``)."""
        if not len(images) == len(prompts) == len(jobs) == len(files):
            raise ValueError("images, prompts, jobs and files must have one entry per image")
        if not images:
            return []
        fidelity = image_similarity(instance_embeddings(self.judges, images), self.instance_references)
        whole = image_similarity(whole_image_embeddings(self.judges, images), self.whole_references)
        scores = []
        for k, verdict in enumerate(self.judges.classify(list(images))):
            checks = prompt_checks(verdict, prompts[k])
            answered = [ok for ok in checks.values() if ok is not None]
            job = jobs[k]
            scores.append(
                WorldScore(
                    row, job.prompt_index, job.image_index, job.seed, prompts[k].kind, job.prompt, files[k],
                    float(fidelity[k]), float(whole[k]), float(np.mean(answered)), **checks,
                )
            )  # fmt: skip
        return scores
