"""The Train tab's page events: photos dropped, a dataset picked, prompts and presets, the time
estimate, Start / Stop / Resume from the page, the polling timer, and opening Generate or Compare with
a finished run's adapter. Each answers updates of the tab's components (see :mod:`app.train_tab`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from dash_diffusion.data.dreambooth import default_class_name
from dash_diffusion.errors import DashError

from .datasets import DEFAULT_TRIGGER, MAX_PHOTOS, DataFolder, check_photos, class_from_file_names, clean_name, prompts_for
from .handlers import COMPARE_BASE, Handlers
from .train_presets import DEFAULT_PRESET, PRESETS, estimate
from .train_service import TrainService, photo_paths
from .train_view import LossCurve, progress_updates
from .training_runs import RunManager, RunStatus

logger = logging.getLogger("app")

CONTEXT_SUFFIX = " on the beach"


class TrainPageHandlers(TrainService):
    """The page's event handlers, on top of :class:`TrainService` (the same manager and data folder) and
    the other tabs' :class:`Handlers` (to open a finished run's adapter)."""

    def __init__(self, manager: RunManager, data: DataFolder, handlers: Handlers, base: str, device: str, default_resolution: int) -> None:
        super().__init__(manager, data, base, device, default_resolution)
        self.handlers = handlers
        self._curve = LossCurve()

    def estimate_markdown(self, steps: Any, resolution: Any, prior: Any, text_encoder: Any) -> str:
        """The time estimate for the settings on the page."""
        try:
            steps_value, side = int(steps), int(resolution)
        except (TypeError, ValueError):
            return "Estimated time: set the steps and the resolution."
        if steps_value < 1 or side < 8:
            return "Estimated time: set the steps and the resolution."
        found = estimate(steps_value, self.base, self.device, side, self.manager.runs_root, bool(prior), bool(text_encoder))
        return found.markdown() + f" Base `{self.base}` on {self.device}."

    def preset_values(self, preset: str, resolution: Any, prior: Any, text_encoder: Any) -> list[Any]:
        """rank, s, t, steps, learning rate, validation and checkpoint intervals and the estimate of a preset."""
        chosen = PRESETS.get(preset) or PRESETS[DEFAULT_PRESET]
        interval = max(1, chosen.steps // 4)
        return [chosen.rank, chosen.directions, chosen.warmup_steps, chosen.steps, chosen.learning_rate, interval, interval,
                self.estimate_markdown(chosen.steps, resolution, prior, text_encoder)]

    def _prompt_updates(self, trigger: str | None, class_name: str) -> list[Any]:
        instance, klass = prompts_for(trigger or DEFAULT_TRIGGER, class_name)
        return [class_name, instance, klass, instance + CONTEXT_SUFFIX]

    def photos_changed(self, photos: Any, dataset: str | None, trigger: str | None) -> list[Any]:
        """Check dropped photos with the trainer's loader; suggest a dataset name, the class and prompts."""
        try:
            paths = photo_paths(photos)
        except DashError as error:
            return [gr.update()] * 5 + [f"**{error}**"]
        if not paths:
            return [gr.update()] * 5 + [""]
        names = [path.name for path in paths]
        check = check_photos(paths[: MAX_PHOTOS + 1], names[: MAX_PHOTOS + 1])
        if len(paths) > MAX_PHOTOS:
            message = f"**{len(paths)} files: use at most {MAX_PHOTOS} photos.**"
        else:
            message = ("" if check.ok else "**") + check.message() + ("" if check.ok else "**")
        class_name = class_from_file_names(check.usable or names)
        name = dataset if isinstance(dataset, str) and dataset.strip() else class_name.replace(" ", "_")
        return [gr.update(value=name), *self._prompt_updates(trigger, class_name), message]

    def dataset_picked(self, dataset: str | None, photos: Any, trigger: str | None) -> list[Any]:
        """A dataset picked or typed: check an existing folder, or take the name for the photos to come;
        class and prompts follow the name (the trainer's rule)."""
        if not isinstance(dataset, str) or not dataset.strip():
            return [gr.update()] * 6
        name = dataset.strip()
        try:
            if clean_name(name) != name:
                raise DashError(f"dataset name {name!r} is not a plain folder name: it would be stored as '{clean_name(name)}'")
        except DashError as error:
            return [gr.update()] * 5 + [f"**{error}**"]
        folder = self.data.datasets_dir / name
        if photos or not folder.is_dir():
            note = f"New dataset **{name}**" + ("" if photos else ": drop its photos above.")
            return [gr.update(), *self._prompt_updates(trigger, default_class_name(name)), note]
        try:
            folder = self.data.resolve(name)
        except DashError as error:
            return [gr.update()] * 5 + [f"**{error}**"]
        check = self.data.check_folder(folder)
        return [gr.update(), *self._prompt_updates(trigger, default_class_name(folder)), f"Dataset **{folder.name}**: {check.message()}"]

    def prompts_changed(self, trigger: str | None, class_name: str | None) -> list[Any]:
        """New trigger word or class: the instance, class and validation prompts follow."""
        return self._prompt_updates(trigger, class_name or "object")[1:]

    def loss_curve(self, status: RunStatus) -> Any:
        """The run's loss curve (redrawn only when a step, the switch or the run changed)."""
        return self._curve(status)

    def render(self, status: RunStatus, message: str = "", poll: bool = True) -> list[Any]:
        """Updates of the progress components for ``status`` (see :func:`~app.train_view.progress_updates`)."""
        return progress_updates(status, self.loss_curve(status), message, poll)

    def tick(self) -> list[Any]:
        """The timer: the current run as it stands."""
        return self.render(self.manager.status())

    def start_from_page(self, photos: Any, dataset: Any, trigger: Any, class_name: Any, instance_prompt: Any, class_prompt: Any,
                        method: Any, preset: Any, rank: Any, directions: Any, warmup: Any, steps: Any, learning_rate: Any,
                        resolution: Any, bucketing: Any, flip: Any, prior: Any, text_encoder: Any,
                        validation_prompt: Any, validation_steps: Any, checkpointing_steps: Any, masks: Any = None) -> list[Any]:
        """The Start button: the panel's values as options, then :meth:`start` (with the loss masks, if any)."""
        options = {
            "trigger": trigger, "class_name": class_name, "instance_prompt": instance_prompt, "class_prompt": class_prompt,
            "rank": rank, "s": directions, "t": warmup, "steps": steps, "lr": learning_rate, "resolution": resolution,
            "bucketing": bucketing, "random_flip": flip, "with_prior_preservation": prior, "train_text_encoder": text_encoder,
            "validation_prompt": validation_prompt, "validation_steps": validation_steps, "checkpointing_steps": checkpointing_steps,
        }
        try:
            status, note, name = self.start(photos, dataset, method, preset, options, masks)
        except DashError as error:
            gr.Warning(str(error))
            return [gr.update(), gr.update(), gr.update(), *self.render(self.manager.status(), f"**Could not start:** {error}")]
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            logger.error("starting a training run failed", exc_info=error)
            return [gr.update(), gr.update(), gr.update(), *self.render(self.manager.status(), f"**Could not start:** {type(error).__name__}: {error}")]
        return [None, gr.update(choices=self.data.datasets(), value=name), None, *self.render(status, f"{status.message}. {note}")]

    def _action_from_page(self, action: Any, what: str) -> list[Any]:
        try:
            status = action()
        except DashError as error:
            gr.Warning(str(error))
            return self.render(self.manager.status(), f"**Could not {what}:** {error}")
        return self.render(status, status.message)

    def stop_from_page(self) -> list[Any]:
        """The Stop button: ask the running trainer to checkpoint and exit."""
        return self._action_from_page(self.manager.stop, "stop")

    def resume_from_page(self) -> list[Any]:
        """The Resume button: continue the stopped run from its latest checkpoint."""
        return self._action_from_page(self.manager.resume, "resume")

    def _adapter_name(self) -> tuple[str | None, str | None]:
        status = self.manager.status()
        if status.state != "finished" or not status.adapter:
            return None, None
        try:
            name = Path(status.adapter).resolve().relative_to(self.handlers.library.real_root).as_posix()
        except ValueError:
            return None, None
        return name, status.instance_prompt

    def open_generate(self, *pickers: str | None) -> list[Any]:
        """Generate tab, with the run's adapter in slot 1 and its trigger prompt."""
        name, prompt = self._adapter_name()
        if name is None:
            return [gr.update(), gr.update(), *[gr.update() for _ in pickers]]
        values = [name, *pickers[1:]]
        return [gr.Tabs(selected="generate"), prompt or gr.update(), *self.handlers.refresh(*values)]

    def open_compare(self, *pickers: str | None) -> list[Any]:
        """Compare tab (base model vs the run's adapter in slot 1), with the trigger prompt."""
        name, prompt = self._adapter_name()
        if name is None:
            return [gr.update(), gr.update(), gr.update(), *[gr.update() for _ in pickers]]
        values = [name, *pickers[1:]]
        return [gr.Tabs(selected="compare"), prompt or gr.update(), COMPARE_BASE, *self.handlers.refresh(*values)]
