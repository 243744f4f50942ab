"""Training presets of the Train tab and the time a run will take.

Presets set the length of a run and the adapter's shape; the advanced panel overrides any of them:

=========  =====  ===============  ====  =====  ======
preset     steps  t (warm-up)      r     s      LR
=========  =====  ===============  ====  =====  ======
quick      250    50               4     8      1e-4
standard   500    100              4     8      1e-4
quality    1000   200              8     8      1e-4
=========  =====  ===============  ====  =====  ======

Time estimates come from a measured seconds-per-step when a previous run on the same base model
left its ``logs/steps.jsonl`` in the runs folder (the median of its steps, scaled to the chosen
resolution, prior preservation and text-encoder training), else from :data:`DEFAULT_SECONDS_PER_STEP`,
a per-base, per-device figure for batch size 1 at the base's native resolution. The estimate says which
one it used.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_FILE_NAME = "run.toml"
STEPS_LOG = Path("logs") / "steps.jsonl"


@dataclass(frozen=True)
class Preset:
    """Length and adapter shape of one preset."""

    name: str
    steps: int
    warmup_steps: int  # t
    rank: int  # r
    directions: int  # s
    learning_rate: float
    description: str


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("quick", 250, 50, 4, 8, 1e-4, "a first look at the subject"),
        Preset("standard", 500, 100, 4, 8, 1e-4, "diffusers' DreamBooth SDXL LoRA length"),
        Preset("quality", 1000, 200, 8, 8, 1e-4, "longer, with rank 8"),
    )
}
DEFAULT_PRESET = "standard"

#: Seconds per optimizer step (batch 1, native resolution, no prior preservation) by base family and device.
DEFAULT_SECONDS_PER_STEP: dict[str, dict[str, float]] = {
    "tiny": {"cpu": 0.1, "cuda": 0.05},
    "mini": {"cpu": 0.6, "cuda": 0.06},
    "sdxl": {"cpu": 120.0, "cuda": 1.5},
}
#: Seconds to load the base model (and cache latents) before the first step.
DEFAULT_STARTUP_SECONDS: dict[str, dict[str, float]] = {
    "tiny": {"cpu": 8.0, "cuda": 10.0},
    "mini": {"cpu": 15.0, "cuda": 15.0},
    "sdxl": {"cpu": 180.0, "cuda": 60.0},
}
NATIVE_RESOLUTION = {"tiny": 64, "mini": 128, "sdxl": 1024}


def base_family(base: str) -> str:
    """``tiny``, ``mini`` or ``sdxl`` (any other hub id or folder)."""
    lowered = base.lower()
    if lowered.startswith("builtin:tiny"):
        return "tiny"
    if lowered.startswith("builtin:mini"):
        return "mini"
    return "sdxl"


def _cost_factor(resolution: int, prior: bool, text_encoder: bool) -> float:
    """Relative cost of a step: pixels, two images per step with prior preservation, CLIP backward."""
    return (resolution / 1024) ** 2 * (2.0 if prior else 1.0) * (1.3 if text_encoder else 1.0)


@dataclass(frozen=True)
class Estimate:
    """How long a run will take, and where the seconds-per-step came from."""

    seconds_per_step: float
    steps: int
    startup_seconds: float
    source: str  # one line: measured on which run, or the documented default

    @property
    def total_seconds(self) -> float:
        return self.steps * self.seconds_per_step + self.startup_seconds

    def markdown(self) -> str:
        return (
            f"Estimated time: **{format_duration(self.total_seconds)}** ({self.steps} steps × "
            f"{self.seconds_per_step:.3g} s + about {format_duration(self.startup_seconds)} to load the model; "
            f"validation images add to it). Seconds per step: {self.source}."
        )


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60):02d} min"


def read_run_options(folder: Path) -> dict[str, Any] | None:
    """The options of a run folder: its ``run.toml``, else its ``training_args.json``; None if neither reads."""
    run_file = folder / RUN_FILE_NAME
    if run_file.is_file():
        try:
            from dash_diffusion.training.run_file import read_run_file

            return dict(read_run_file(run_file))
        except Exception:  # noqa: BLE001 - an unreadable run file only costs the measurement
            pass
    args = folder / "training_args.json"
    if args.is_file():
        try:
            data = json.loads(args.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None
    return None


def step_seconds(log: Path) -> list[float]:
    """The ``seconds`` of every step in a ``steps.jsonl`` (bad lines skipped)."""
    values = []
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            value = json.loads(line).get("seconds")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and value > 0:
            values.append(float(value))
    return values


def measured_seconds_per_step(runs_root: Path, base: str, resolution: int, prior: bool, text_encoder: bool) -> tuple[float, str] | None:
    """Seconds per step measured by the newest run on ``base`` in ``runs_root`` (scaled to these
    settings), with a line naming the run; None when no run on this base has logged steps."""
    candidates = []
    try:
        folders = [entry for entry in Path(runs_root).iterdir() if entry.is_dir()]
    except OSError:
        return None
    for folder in folders:
        log = folder / STEPS_LOG
        if log.is_file():
            candidates.append((log.stat().st_mtime, folder))
    for _, folder in sorted(candidates, reverse=True):
        options = read_run_options(folder)
        if not options or options.get("pretrained_model_name_or_path") != base:
            continue
        seconds = step_seconds(folder / STEPS_LOG)
        if len(seconds) > 1:
            seconds = seconds[1:]  # the first step also warms up kernels and caches
        if not seconds:
            continue
        median = statistics.median(seconds)
        try:
            theirs = _cost_factor(int(options.get("resolution") or resolution), bool(options.get("with_prior_preservation")), bool(options.get("train_text_encoder")))
        except (TypeError, ValueError):
            continue
        ours = _cost_factor(resolution, prior, text_encoder)
        note = "" if abs(ours / theirs - 1) < 1e-9 else f", scaled ×{ours / theirs:.2g} to these settings"
        return median * ours / theirs, f"measured on run `{folder.name}` (median {median:.3g} s over {len(seconds)} steps{note})"
    return None


def estimate(steps: int, base: str, device: str, resolution: int, runs_root: Path, prior: bool = False, text_encoder: bool = False) -> Estimate:
    """The time of a run of ``steps`` optimizer steps on ``base`` (``device`` is ``cpu`` or ``cuda``)."""
    family = base_family(base)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    measured = measured_seconds_per_step(runs_root, base, resolution, prior, text_encoder)
    startup = DEFAULT_STARTUP_SECONDS[family][kind]
    if measured is not None:
        return Estimate(measured[0], steps, startup, measured[1])
    native = NATIVE_RESOLUTION[family]
    per_step = DEFAULT_SECONDS_PER_STEP[family][kind] * _cost_factor(resolution, prior, text_encoder) / _cost_factor(native, False, False)
    return Estimate(per_step, steps, startup, f"default for {family} on {kind} ({DEFAULT_SECONDS_PER_STEP[family][kind]:g} s at {native} px; no earlier run on this base to measure)")
