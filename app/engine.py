"""The one pipeline of the app: renders under a lock and keeps track of which adapters are loaded.

Gradio's queue already runs pipeline events one at a time (they share one concurrency group); the
lock makes that true for any caller. Switching adapters unloads the previous ones
(:func:`dash_diffusion.formats.pipeline_adapters.apply_adapters`); when only the weights change, the loaded
adapters are re-weighted with ``set_adapters`` instead of being read again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from dash_diffusion.errors import DashError
from dash_diffusion.formats.lora_files import LoraFileInfo
from dash_diffusion.formats.pipeline_adapters import apply_adapters, clear_adapters

from .infotext import parameters_text, with_parameters
from .library import AdapterEntry
from .schedulers import make_scheduler
from .settings import RenderSettings
from .uploads import check_upload

#: ``(entry, weight)`` pairs: the adapters of one render.
Picks = Sequence[tuple[AdapterEntry, float]]
#: Called after every denoising step with (steps done, steps in this render).
StepCallback = Callable[[int, int], None]


def _file_key(entry: AdapterEntry) -> tuple[str, int, int]:
    stat = entry.lora_file.stat()
    return str(entry.lora_file), stat.st_mtime_ns, stat.st_size


class Engine:
    """Owns the pipeline; every use of it goes through :meth:`render`, :meth:`compare` or :meth:`check_upload`."""

    def __init__(self, pipe: Any, model_name: str) -> None:
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=True)  # the page shows its own progress bar
        self.model_name = model_name
        self.lock = threading.RLock()
        self.base_scheduler_config = pipe.scheduler.config
        self._loaded_key: tuple | None = ()  # None: unknown state after a failed load
        self._loaded_names: list[str] = []

    @property
    def device(self) -> str:
        """Where the pipeline runs and in which precision, e.g. ``cpu / float32``."""
        unet = self.pipe.unet
        return f"{unet.device.type} / {str(unet.dtype).removeprefix('torch.')}"

    @property
    def default_size(self) -> int:
        """The base model's native image side (1024 for SDXL, 64 for the tiny model)."""
        sample = int(getattr(self.pipe, "default_sample_size", 128) or 128)
        return sample * int(getattr(self.pipe, "vae_scale_factor", 8) or 8)

    def _use_adapters(self, picks: Picks) -> None:
        key = tuple(_file_key(entry) for entry, _ in picks)
        weights = [float(weight) for _, weight in picks]
        if key == self._loaded_key:
            if key:
                self.pipe.set_adapters(self._loaded_names, adapter_weights=weights)
            return
        previous, self._loaded_key = self._loaded_key, None
        try:
            applied = apply_adapters(self.pipe, [(entry.lora_file, weight) for entry, weight in picks])
        except DashError:
            self._loaded_key = previous  # every file is checked before anything is unloaded
            raise
        except Exception:
            clear_adapters(self.pipe)  # a load failed half-way: back to the base model
            self._loaded_key, self._loaded_names = (), []
            raise
        self._loaded_key, self._loaded_names = key, [adapter.name for adapter in applied]

    def render(self, settings: RenderSettings, picks: Picks, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Images for checked ``settings`` with ``picks`` applied; each carries its A1111 parameters."""
        import torch

        with self.lock:
            self._use_adapters(picks)
            self.pipe.scheduler = make_scheduler(settings.scheduler, self.base_scheduler_config)
            generators = [torch.Generator("cpu").manual_seed(settings.seed + i) for i in range(settings.num_images)]

            def step_end(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
                if on_step is not None:
                    on_step(step + 1, int(getattr(pipe, "num_timesteps", settings.steps) or settings.steps))
                return tensors

            try:
                images = self.pipe(
                    prompt=settings.prompt,
                    negative_prompt=settings.negative_prompt or None,
                    num_inference_steps=settings.steps,
                    guidance_scale=settings.guidance,
                    width=settings.width,
                    height=settings.height,
                    num_images_per_prompt=settings.num_images,
                    generator=generators,
                    callback_on_step_end=step_end,
                    output_type="pil",
                ).images
            except torch.cuda.OutOfMemoryError as error:
                torch.cuda.empty_cache()
                raise DashError("out of GPU memory: lower the size or the number of images") from error
        named = [(entry.name, float(weight)) for entry, weight in picks]
        return [
            with_parameters(image, parameters_text(settings, settings.seed + i, named, self.model_name))
            for i, image in enumerate(images)
        ]

    def compare(self, settings: RenderSettings, left: Picks, right: Picks, on_step: StepCallback | None = None) -> tuple[Image.Image, Image.Image]:
        """One image with ``left`` and one with ``right``, same prompt and seed."""
        single = replace(settings, num_images=1)

        def half(offset: int) -> StepCallback | None:
            if on_step is None:
                return None
            return lambda done, total: on_step(offset * total + done, 2 * total)

        with self.lock:
            first = self.render(single, left, half(0))[0]
            second = self.render(single, right, half(1))[0]
        return first, second

    def check_upload(self, path: str | Path, original_name: str, max_bytes: int) -> LoraFileInfo:
        """Every upload check, the fit to this base model included (under the lock: it reads the model)."""
        with self.lock:
            return check_upload(path, original_name, self.pipe, max_bytes)
