"""One run of the study: train a method on one subject with one seed, generate its images, score, store.

For ``(subject, method, seed)``:

1. **train** (not for ``base``) with the project's trainer, in-process
   (:func:`dash_diffusion.training.train.train`): the subject's training photos, the instance prompt
   ``a photo of sks <class>``, ``steps`` optimizer steps at the study's learning rate, seed ``seed``, and the
   method's options (:meth:`~.methods.Method.train_options`); prior-preservation methods also get the
   subject's class images (made beforehand by :mod:`.study`). Checkpoints and the kohya copy are
   deleted afterwards; the diffusers and native adapter files stay;
2. **evaluate**: a stock pipeline loads the adapter with ``load_lora_weights``
   (:func:`dash_diffusion.eval.runner.use_row`), renders the prompt set from the seeds of
   :func:`~.settings.eval_seed` and scores every image (:mod:`.rows`, :mod:`.scoring`);
3. **store** the record (:mod:`.store`) with the per-image scores, the run's means, the training
   loss, the wall times of training and evaluation and the threads it had.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dash_diffusion.models.world import SUBJECTS, class_prompt, instance_prompt

from .methods import BASE, method_named, run_folder
from .prompts import pick_prompts, subject_prompts
from .rows import render_row, world_jobs
from .scoring import ATTRIBUTES, METRICS, WorldScore
from .settings import StudySettings, eval_seed
from .store import write_result

ADAPTER_FOLDER = "adapter"
TRAIN_LOG = "train.log"
LOSS_TAIL = 0.1
"""The share of the last training steps whose mean loss is reported."""


@dataclass(frozen=True)
class RunTask:
    """Which run to make."""

    subject: str
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.subject} / {self.method} / seed {self.seed}"


@dataclass(frozen=True)
class StudyContext:
    """What every run of a study shares (picklable, sent to worker processes)."""

    settings: StudySettings
    protocol: dict[str, Any]
    data_digests: dict[str, str]
    threads_per_run: int


def data_folder(root: Path, subject: str) -> Path:
    """``<out>/data/<subject>``: ``train/``, ``reference/`` and, for prior preservation, ``class/``."""
    return root / "data" / subject


def train_options(task: RunTask, settings: StudySettings) -> dict[str, Any]:
    """The :class:`~dash_diffusion.training.train_config.TrainConfig` options of a run."""
    subject = SUBJECTS[task.subject]
    method = method_named(task.method)
    data = data_folder(settings.out, task.subject)
    options: dict[str, Any] = {
        "pretrained_model_name_or_path": settings.model,
        "instance_dir": str(data / "train"),
        "instance_prompt": instance_prompt(subject.object),
        "resolution": settings.sampling.resolution,
        "center_crop": True,
        "learning_rate": settings.learning_rate,
        "max_train_steps": settings.steps,
        "checkpointing_steps": settings.steps,
        "seed": task.seed,
        "output_dir": str(run_folder(settings.out, task.subject, task.method, task.seed) / ADAPTER_FOLDER),
        **method.train_options(settings.steps),
    }
    if method.prior:
        options.update(class_dir=str(data / "class"), class_prompt=class_prompt(subject.object), num_class_images=settings.class_images)
    return options


def _training_summary(adapter: Path) -> dict[str, Any]:
    """Mean loss of the last :data:`LOSS_TAIL` of the steps, mean seconds of one optimizer step (set-up
    and export left out), the step the directions were chosen at and the trained parameters."""
    lines = [json.loads(line) for line in (adapter / "logs" / "steps.jsonl").read_text().splitlines() if line.strip()]
    tail = lines[-max(1, round(LOSS_TAIL * len(lines))) :]
    selection = adapter / "logs" / "selection.json"
    selected = json.loads(selection.read_text()).get("selected_at_step") if selection.is_file() else None
    return {
        "final_loss": float(np.mean([line["loss"] for line in tail])),
        "steps": len(lines),
        "step_seconds": float(np.mean([line["seconds"] for line in lines])),
        "selected_at_step": selected,
        "trainable_parameters": trainable_parameters(adapter),
    }


def trainable_parameters(adapter: Path) -> int:
    """How many numbers the run trained: every ``lora_A``, ``lora_B`` and ``dash_delta`` of the native file
    (``r (in + out)`` per layer, plus ``s`` for LoRA-Dash; ``U_s``, ``V_s`` are frozen buffers)."""
    from dash_diffusion.formats.export import NATIVE_WEIGHT_NAME
    from dash_diffusion.formats.safetensors_io import read_header

    shapes, _ = read_header(adapter / NATIVE_WEIGHT_NAME)
    return sum(math.prod(shape) for key, shape in shapes.items() if key.endswith(("lora_A.weight", "lora_B.weight", ".dash_delta")))


def _prune(adapter: Path) -> None:
    """Delete what evaluation does not need (checkpoints, the kohya copy of the adapter)."""
    from dash_diffusion.formats.export import KOHYA_WEIGHT_NAME

    for checkpoint in adapter.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    (adapter / KOHYA_WEIGHT_NAME).unlink(missing_ok=True)


def train_run(task: RunTask, settings: StudySettings) -> tuple[Path, dict[str, Any]]:
    """Train the run's adapter; returns its folder and the training summary (with ``seconds``)."""
    from dash_diffusion.training.train import train
    from dash_diffusion.training.train_config import TrainConfig

    config = TrainConfig(**train_options(task, settings))
    config.output_path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(config.output_path / TRAIN_LOG, "w", encoding="utf-8") as log, contextlib.redirect_stderr(log):
        adapter = train(config)  # its progress bar goes to the run's log, not the study's
    seconds = time.perf_counter() - started
    _prune(adapter)
    return adapter, {**_training_summary(adapter), "seconds": seconds}


def run_means(scores: list[WorldScore]) -> dict[str, float | None]:
    """The run's mean of every metric, and its accuracy on each asked-for attribute (None if never asked)."""
    means: dict[str, float | None] = {m: float(np.mean([s.metric(m) for s in scores])) for m in METRICS}
    for name in ATTRIBUTES:
        checked = [getattr(s, f"{name}_ok") for s in scores if getattr(s, f"{name}_ok") is not None]
        means[f"{name}_accuracy"] = float(np.mean(checked)) if checked else None
    return means


def evaluate_run(task: RunTask, settings: StudySettings, adapter: Path | None) -> tuple[list[WorldScore], float]:
    """Render and score the run's prompt set; returns the scores and the seconds it took."""
    from dash_diffusion.eval.generation import load_pipeline
    from dash_diffusion.eval.runner import use_row
    from dash_diffusion.models.world_judges import load_judges

    from .photos import reference_photos
    from .scoring import WorldScorer

    started = time.perf_counter()
    pipe = load_pipeline(settings.model, "cpu", torch.float32)
    use_row(pipe, str(adapter) if adapter else None)
    scorer = WorldScorer(load_judges(), [photo.image for photo in reference_photos(task.subject)])
    prompts = subject_prompts(task.subject)
    jobs = world_jobs(prompts, pick_prompts(prompts, settings.prompts), settings.num_images, eval_seed(task.seed), identified=adapter is not None)
    root = run_folder(settings.out, task.subject, task.method, task.seed)
    result = render_row(pipe, scorer, task.method, prompts, jobs, settings.sampling, root, Path("images"))
    return result.scores, time.perf_counter() - started


def perform(task: RunTask, context: StudyContext) -> dict[str, Any]:
    """Make one run from scratch (an unfinished earlier attempt's files are removed) and store its record."""
    from dash_diffusion.eval.record import versions

    settings = context.settings
    folder = run_folder(settings.out, task.subject, task.method, task.seed)
    if folder.exists():
        shutil.rmtree(folder)  # no result.json there (finished runs are skipped): a crashed attempt
    training: dict[str, Any] | None = None
    adapter = None
    if task.method != BASE:
        adapter, training = train_run(task, settings)
    scores, eval_seconds = evaluate_run(task, settings, adapter)
    record = {
        "subject": task.subject,
        "method": task.method,
        "seed": task.seed,
        "protocol": context.protocol,
        "data_sha256": context.data_digests[task.subject],
        "method_spec": None if task.method == BASE else asdict(method_named(task.method)),
        "train_options": None if task.method == BASE else train_options(task, settings),
        "training": training,
        "timings": {"train_s": training["seconds"] if training else 0.0, "eval_s": eval_seconds},
        "environment": {"torch_threads": torch.get_num_threads(), "jobs": settings.jobs, "cpu_count": os.cpu_count(), "versions": versions()},
        "means": run_means(scores),
        "scores": [score.to_dict() for score in scores],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    write_result(settings.out, record)
    return record
