"""The study's markdown: methods x metrics with paired 95 % intervals, prior preservation, attributes,
per-subject rows, the judges' calibration and the cost per run.

A run's value of a metric is its mean over its images (the same prompts and image seeds for every method
of that subject and seed). A method's value is the mean over subjects of the mean over seeds; its paired
difference against :data:`~.methods.REFERENCE` and its interval come from :mod:`.bootstrap`
(pairs on (subject, seed), subjects resampled, then seeds within them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .bootstrap import BOOTSTRAP_SEED, LEVEL, RESAMPLES, Interval, cluster_bootstrap, cluster_mean, paired_groups
from .calibration import KINDS as CALIBRATION_KINDS
from .methods import PRIOR_TWINS, REFERENCE, label_of
from .scoring import ATTRIBUTES, METRIC_LABELS, METRIC_ROLES, METRICS

Records = Sequence[dict[str, Any]]


def values(records: Records, method: str, key: str) -> dict[tuple[str, int], float]:
    """``(subject, seed) -> means[key]`` of ``method``'s runs (runs where it is undefined left out)."""
    return {(r["subject"], r["seed"]): r["means"][key] for r in records if r["method"] == method and r["means"].get(key) is not None}


def subject_average(by_run: dict[tuple[str, int], float]) -> float:
    """Mean over subjects of the mean over seeds (NaN without runs)."""
    groups: dict[str, list[float]] = {}
    for (subject, _), value in sorted(by_run.items()):
        groups.setdefault(subject, []).append(value)
    return cluster_mean(list(groups.values())) if groups else math.nan


def paired(records: Records, method: str, reference: str, metric: str) -> Interval | None:
    """``method - reference`` on their shared (subject, seed) runs, with its interval (None if none)."""
    groups = paired_groups(values(records, method, metric), values(records, reference, metric))
    return cluster_bootstrap(groups) if groups else None


def _methods(records: Records) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in records))


def _interval(interval: Interval | None, digits: int = 3) -> str:
    if interval is None:
        return "n/a"
    if interval.subjects < 2:
        return f"{interval.estimate:+.{digits}f} (1 subject: no CI)"
    mark = " *" if interval.excludes_zero else ""
    return f"{interval.estimate:+.{digits}f} [{interval.low:+.{digits}f}, {interval.high:+.{digits}f}]{mark}"


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def main_table(records: Records) -> list[str]:
    """Methods x metrics, with paired differences against the reference."""
    heads = " | ".join(f"{METRIC_LABELS[m]} ({METRIC_ROLES[m]}'s role)" for m in METRICS)
    deltas = " | ".join(f"Δ {METRIC_LABELS[m]} [95% CI]" for m in METRICS)
    lines = [f"| method | runs | {heads} | {deltas} |", "|---|---:|" + "---:|" * (2 * len(METRICS))]
    for method in _methods(records):
        runs = sum(r["method"] == method for r in records)
        means = " | ".join(_number(subject_average(values(records, method, m))) for m in METRICS)
        if method == REFERENCE:
            diffs = " | ".join("(reference)" for _ in METRICS)
        else:
            diffs = " | ".join(_interval(paired(records, method, REFERENCE, m)) for m in METRICS)
        lines.append(f"| {label_of(method)} | {runs} | {means} | {diffs} |")
    return lines


def prior_table(records: Records) -> list[str]:
    """The effect of prior preservation: each prior method against its twin without it."""
    present = _methods(records)
    pairs = [(prior, twin) for prior, twin in PRIOR_TWINS.items() if prior in present and twin in present]
    if not pairs:
        return []
    lines = ["| comparison | " + " | ".join(f"Δ {METRIC_LABELS[m]} [95% CI]" for m in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for prior, twin in pairs:
        lines.append(f"| {label_of(prior)} − {label_of(twin)} | " + " | ".join(_interval(paired(records, prior, twin, m)) for m in METRICS) + " |")
    return lines


def attribute_table(records: Records) -> list[str]:
    """Prompt fidelity split by attribute: the share of images showing the asked object, scene, colour."""
    lines = ["| method | object | scene (scene and combination prompts) | colour (colour and combination prompts) |", "|---|---:|---:|---:|"]
    for method in _methods(records):
        cells = [subject_average(values(records, method, f"{name}_accuracy")) for name in ATTRIBUTES]
        lines.append(f"| {label_of(method)} | " + " | ".join("n/a" if math.isnan(c) else f"{100 * c:.0f}%" for c in cells) + " |")
    return lines


def subject_table(records: Records) -> list[str]:
    """One row per subject: each method's subject fidelity / prompt fidelity (means over seeds)."""
    methods = _methods(records)
    lines = ["| subject | " + " | ".join(label_of(m) for m in methods) + " |", "|---|" + "---:|" * len(methods)]
    for subject in dict.fromkeys(r["subject"] for r in records):
        cells = []
        for method in methods:
            mine = [r for r in records if r["subject"] == subject and r["method"] == method]
            cells.append(" / ".join(_number(float(np.mean([r["means"][m] for r in mine])), 2) for m in ("subject_fidelity", "prompt_fidelity")) if mine else "n/a")
        lines.append(f"| {subject} | " + " | ".join(cells) + " |")
    return lines


def calibration_table(calibration: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| subject | " + " | ".join(CALIBRATION_KINDS) + " |", "|---|" + "---:|" * len(CALIBRATION_KINDS)]
    for subject, scores in calibration.items():
        lines.append(f"| {subject} | " + " | ".join(f"{scores[k]:.3f}" for k in CALIBRATION_KINDS) + " |")
    return lines


def _mean_sd(numbers: list[float]) -> str:
    if len(numbers) < 2:
        return f"{numbers[0]:.1f}" if numbers else "n/a"
    return f"{np.mean(numbers):.1f} ± {np.std(numbers, ddof=1):.1f}"


def cost_table(records: Records) -> list[str]:
    """Per method: trained parameters, mean training loss of the last 10 % of steps, and wall seconds per
run (training, evaluation = generating and scoring, both), with the jobs and threads the runs had."""
    lines = [
        "| method | runs | trained parameters | final loss | train s/run | eval s/run | total s/run | s per optimizer step | jobs x threads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for method in _methods(records):
        mine = [r for r in records if r["method"] == method]
        trained = [r["training"] for r in mine if r.get("training")]
        train = [r["timings"]["train_s"] for r in mine]
        evaluate = [r["timings"]["eval_s"] for r in mine]
        per_step = [t["step_seconds"] for t in trained if "step_seconds" in t]
        setups = sorted({f"{r['environment']['jobs']} x {r['environment']['torch_threads']}" for r in mine})
        parameters = ", ".join(f"{n:,}" for n in sorted({t["trainable_parameters"] for t in trained if t.get("trainable_parameters")})) or "-"
        loss = f"{np.mean([t['final_loss'] for t in trained]):.4f}" if trained else "-"
        lines.append(
            f"| {label_of(method)} | {len(mine)} | {parameters} | {loss} | {_mean_sd(train) if trained else '-'} | {_mean_sd(evaluate)} | "
            f"{_mean_sd([a + b for a, b in zip(train, evaluate)])} | {f'{np.mean(per_step):.3f}' if per_step else '-'} | {', '.join(setups)} |"
        )
    return lines


def markdown(records: Records, description: list[str], calibration: dict[str, dict[str, float]], grid: str | None) -> str:
    """The whole results section (without the provenance header the script adds)."""
    subjects = len({r["subject"] for r in records})
    lines = [*description, "", *main_table(records), ""]
    lines.append(
        f"Values: mean over {subjects} subject(s) of the mean over seeds of each run's mean over its images. Δ: paired difference "
        f"against {label_of(REFERENCE)} on the same (subject, seed, prompts, image seeds), {int(LEVEL * 100)}% percentile interval of a "
        f"two-stage bootstrap (subjects, then seeds within them; {RESAMPLES} resamples, seed {BOOTSTRAP_SEED}); * marks an interval "
        "that excludes 0. The base model's row uses the class prompts (no identifier)."
    )
    prior = prior_table(records)
    if prior:
        lines += ["", "Prior preservation on against off (same method, paired the same way):", "", *prior]
    lines += ["", "Prompt fidelity by attribute (share of images where the judges find what the prompt asks):", "", *attribute_table(records)]
    lines += ["", "Per subject, subject fidelity / prompt fidelity (mean over seeds):", "", *subject_table(records)]
    lines += ["", "What subject fidelity can resolve: the score of renders of the subject, of look-alikes (same class and colour, another shape; for the robot another emblem) and of the subject recoloured, in its training poses:", "", *calibration_table(calibration)]
    lines += ["", "Training and cost: trained parameters, final loss (mean of the last 10% of steps; prior preservation adds the class loss) and wall time per run on this machine:", "", *cost_table(records)]
    if grid:
        lines += ["", f"Image grid: `{grid}` (per subject and prompt: a training photo, the base model, every method; first seed, first image)."]
    return "\n".join(lines) + "\n"
