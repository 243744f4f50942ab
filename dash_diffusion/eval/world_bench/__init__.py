"""mini-DreamBench: DreamBooth's protocol (Ruiz et al. 2023) on ``builtin:mini-sdxl`` and its procedural world.

Does LoRA-Dash learn a subject better than LoRA? Each held-out world subject (an instance pretraining
never drew) is learned from five rendered photos by every method, with the same data, steps and seeds,
and the project's world judges score what each adapter generates, in the roles DreamBooth gives DINO,
CLIP-I and CLIP-T. Modules, in the order of the data flow:

| module | holds |
|---|---|
| :mod:`.photos` | the subjects' training and reference photos (deterministic renders) |
| :mod:`.prompts` | 13 prompts per subject: scenes, colour changes, combinations |
| :mod:`.methods` | LoRA r=4 (reference), LoRA-Dash t=25 / t=100, LoRA r=12, prior preservation |
| :mod:`.scoring` | subject fidelity, whole-image similarity, prompt fidelity (shared with ``evaluate_dreambooth.py --judges world``) |
| :mod:`.rows` | generating and scoring one row from fixed seeds (shared likewise) |
| :mod:`.settings`, :mod:`.store` | a study's options and protocol; one result file per finished run |
| :mod:`.one_run`, :mod:`.study` | train, evaluate and store one run; all runs, resumable and parallel |
| :mod:`.bootstrap` | paired differences with two-stage bootstrap intervals |
| :mod:`.calibration` | what the subject-fidelity score can resolve, per subject |
| :mod:`.report`, :mod:`.grid` | the markdown tables and the image grid |

The command line is ``benchmarks/mini_dreambench.py``.
"""

from .bootstrap import Interval, cluster_bootstrap
from .methods import BASE, DEFAULT_METHODS, METHODS, REFERENCE, Method
from .photos import reference_photos, training_photos
from .prompts import WorldPrompt, subject_prompts
from .scoring import METRICS, WorldScore, WorldScorer

__all__ = [
    "BASE",
    "DEFAULT_METHODS",
    "Interval",
    "METHODS",
    "METRICS",
    "Method",
    "REFERENCE",
    "WorldPrompt",
    "WorldScore",
    "WorldScorer",
    "cluster_bootstrap",
    "reference_photos",
    "subject_prompts",
    "training_photos",
]
