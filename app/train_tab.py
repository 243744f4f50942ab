"""The Train tab: photos in, a LoRA-Dash (or LoRA) adapter out, on the real trainer in the background.

Layout: photos (or a dataset folder of the data folder), trigger word and class with the prompts they
make, method and preset with a time estimate, an advanced panel, Start / Stop / Resume, then the live
progress of the run (polled with a ``gr.Timer`` while the tab shows a running run): step, loss curve
coloured by phase, ETA, the selected directions and the validation images. A finished run offers
buttons that open Generate or Compare with its adapter.

API (``gradio_client``), each answering the run's status as JSON (see :meth:`RunStatus.to_json
<app.training_runs.RunStatus.to_json>`, plus ``ok`` and ``message``)::

    /train(photos: list of files, dataset: str, method: "LoRA-Dash" | "LoRA", preset: str, options: JSON)
    /train_status()    /train_stop()    /train_resume()
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import ListFiles
from pydantic import ValidationError

from dash_diffusion.data.dreambooth import default_class_name
from dash_diffusion.errors import DashError

from .datasets import DEFAULT_TRIGGER, MAX_PHOTOS, MIN_PHOTOS, DataFolder, check_photos, class_from_file_names, clean_name, prompts_for
from .handlers import COMPARE_BASE, Handlers
from .loss_plot import render_loss_curve
from .train_presets import DEFAULT_PRESET, PRESETS, estimate
from .train_requests import METHODS, check_request, make_config, run_name
from .training_runs import RunManager, RunStatus

logger = logging.getLogger("app")

POLL_SECONDS = 1.5
TRAIN_GROUP = "train"
PHASE_LABELS = {"lora": "LoRA warm-up", "dash": "LoRA-Dash", "plain": "LoRA"}
STATE_WORDS = {
    "none": "no run yet", "starting": "starting (loading the model)", "running": "running", "stopping": "stopping (saving a checkpoint)",
    "stopped": "stopped", "finished": "finished", "failed": "failed",
}
CONTEXT_SUFFIX = " on the beach"


class CheckedListFiles(ListFiles):
    """gradio's list-of-files payload, answering a malformed one (a bare path, a dict without gradio's
    file marker) with a message instead of a pydantic traceback in the server log."""

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return ListFiles.model_validate(obj, *args, **kwargs)
        except ValidationError:
            raise gr.Error("photos must be a list of uploaded image files (gradio_client: [handle_file(path), ...])", print_exception=False) from None


def _photo_paths(photos: object) -> list[Path]:
    """Uploaded files as paths (gradio gives file paths; an API caller may send one path or a list)."""
    if photos is None or photos == "" or photos == []:
        return []
    items = photos if isinstance(photos, (list, tuple)) else [photos]
    paths = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            item = item["path"]
        if not isinstance(item, (str, Path)) or not str(item):
            raise DashError(f"photos must be uploaded image files, got {type(item).__name__}")
        paths.append(Path(item))
    return paths


def selection_markdown(selection: object, selected_at: int | None) -> str:
    """A few lines about the directions chosen at step t (``logs/selection.json``)."""
    if not isinstance(selection, dict):
        return f"Directions selected at step {selected_at}." if selected_at is not None else ""
    lines = [f"**Directions selected at step {selection.get('selected_at_step', selected_at)}**"]
    layers = selection.get("layers")
    if isinstance(layers, dict):
        for component, members in layers.items():
            if isinstance(members, dict):
                lines.append(f"- {component}: {len(members)} layers")
    counts = selection.get("position_counts")
    if isinstance(counts, dict):
        for component, values in counts.items():
            if isinstance(values, list) and values:
                top = sorted(range(len(values)), key=lambda i: -values[i])[:5]
                lines.append(f"- {component}: most chosen singular-value positions " + ", ".join(f"{i} ({values[i]} layers)" for i in top))
    return "\n".join(lines)


def status_markdown(status: RunStatus, message: str = "") -> str:
    """The status lines above the progress bar."""
    if status.run is None:
        text = "No training run yet: add photos, pick a preset and press **Start training**."
        return f"{message}\n\n{text}" if message else text
    state = "running (loading the model)" if status.state == "running" and status.phase == "loading" else STATE_WORDS.get(status.state, status.state)
    head = f"**Run `{status.run}`** · {status.method} · **{state}**"
    facts = []
    if status.total:
        facts.append(f"step {status.step} / {status.total} ({100 * status.step / status.total:.0f} %)")
    if status.loss is not None:
        facts.append(f"loss {status.loss:.4f}")
    if status.lr is not None:
        facts.append(f"lr {status.lr:.2e}")
    if status.phase and status.phase != "loading":
        facts.append(f"phase {PHASE_LABELS.get(status.phase, status.phase) if status.method == 'LoRA-Dash' else 'LoRA'}")
    if status.eta is not None:
        facts.append(f"ETA {status.to_json()['eta_text']} ({status.seconds_per_step:.3g} s/step)")
    lines = [head + (" — " + " · ".join(facts) if facts else "")]
    if status.state == "failed" and status.error:
        lines.append(f"**Error:** {status.error}")
    if status.state == "stopped":
        lines.append("Stopped with a checkpoint: **Resume** continues where it left off.")
    if status.state == "finished" and status.adapter:
        lines.append(f"Adapter written to `{status.adapter}`; it is in the adapter lists. Trigger prompt: `{status.instance_prompt}`")
    if status.command:
        lines.append(f"Repeat it from a terminal: `{status.command}`")
    if message:
        lines.insert(0, message)
    return "\n\n".join(lines)


PROGRESS_COLOUR = "#6d28d9"


def progress_html(status: RunStatus) -> str:
    """A progress bar of the run's steps (a plain div, drawn the same by every browser)."""
    total = status.total or 0
    value = min(status.step, total) if total else 0
    percent = 100.0 * value / total if total else 0.0
    return (
        f'<div id="train-progress-bar" role="progressbar" aria-valuenow="{value}" aria-valuemin="0" aria-valuemax="{total}" '
        f'style="width:100%;height:14px;border-radius:7px;background:#e2e8f0;overflow:hidden">'
        f'<div style="width:{percent:.1f}%;height:100%;background:{PROGRESS_COLOUR}"></div></div>'
    )


class TrainTab:
    """The Train tab's components, handlers and API endpoints, bound to one run manager and data folder."""

    def __init__(self, manager: RunManager, data: DataFolder, handlers: Handlers, base: str, device: str, default_resolution: int) -> None:
        self.manager = manager
        self.data = data
        self.handlers = handlers
        self.base = base
        self.device = device
        self.default_resolution = default_resolution
        self._curve: tuple[tuple, Any] = ((), None)  # the last loss curve drawn, by what it shows

    # ----- the work behind both the page and the API ------------------------------------------
    def start(self, photos: object, dataset: object, method: object, preset: object, options: object) -> tuple[RunStatus, str, str]:
        """Check the request, store the photos as a dataset, write run.toml and launch the trainer.

        Returns the new run's status, a line about the photos and the dataset's name; :class:`DashError`
        for anything refused.
        """
        request = check_request(method, preset, options)
        busy = self.manager.active_run()
        if busy is not None:
            raise DashError(f"run '{busy.name}' is still in progress: stop it or wait until it ends (one run at a time)")
        paths = _photo_paths(photos)
        if dataset is not None and not isinstance(dataset, str):
            raise DashError(f"dataset must be a name, got {type(dataset).__name__}")
        resolution = request.options.get("resolution", self.default_resolution)
        # every option is checked (TrainConfig included) before anything is stored
        make_config(request, base=self.base, dataset_folder=self.data.datasets_dir / "check", class_dir=self.data.root / "check",
                    output_dir=self.manager.runs_root / "check", resolution=resolution, device=self.device)
        if request.options.get("run_name"):
            run_name("", request, self.manager.runs_root)  # a bad or taken run name is refused before anything is stored
        if paths:
            name, check = self.data.store_upload(paths, dataset)
            note = f"Stored {len(check.usable)} photos as dataset **{name}**" + (f" ({check.message()})" if check.unreadable or check.ignored else "")
        elif isinstance(dataset, str) and dataset.strip():
            name = dataset.strip()
            folder = self.data.resolve(name)
            check = self.data.check_folder(folder)
            check.raise_unless_ok()
            note = f"Dataset **{name}**: {check.message()}"
        else:
            raise DashError(f"no photos given: upload {MIN_PHOTOS} to {MAX_PHOTOS} photos of the subject or pick a dataset")
        folder = self.data.resolve(name)
        output = self.manager.runs_root / run_name(name, request, self.manager.runs_root)
        config = make_config(request, base=self.base, dataset_folder=folder, class_dir=self.data.class_images_dir(name),
                             output_dir=output, resolution=resolution, device=self.device)
        status = self.manager.start(config)
        return status, note, name

    def _answer(self, action: Any) -> dict[str, Any]:
        """Run ``action`` (returning a status, or a status and a note) and answer JSON; a refusal is a message."""
        try:
            result = action()
        except DashError as error:
            data = self.manager.status().to_json()
            data.update(ok=False, message=str(error))
            return data
        except Exception as error:  # noqa: BLE001 - never a traceback for the caller
            logger.error("training request failed", exc_info=error)
            data = self.manager.status().to_json()
            data.update(ok=False, message=f"the request failed ({type(error).__name__}: {error}); the server log has the details")
            return data
        status, note = (result[0], result[1]) if isinstance(result, tuple) else (result, "")
        data = status.to_json()
        data.update(ok=True, message=" · ".join(part for part in (status.message, note) if part))
        return data

    def api_train(self, photos: Any, dataset: Any, method: Any, preset: Any, options: Any) -> dict[str, Any]:
        """``/train``: start a run; answers the status JSON with ``ok`` and ``message``."""
        return self._answer(lambda: self.start(photos, dataset, method, preset, options))

    def api_status(self) -> dict[str, Any]:
        """``/train_status``: the current (or last) run's state, step, total, loss, eta, adapter."""
        return self._answer(self.manager.status)

    def api_stop(self) -> dict[str, Any]:
        """``/train_stop``: ask the running trainer to checkpoint and exit."""
        return self._answer(self.manager.stop)

    def api_resume(self) -> dict[str, Any]:
        """``/train_resume``: continue the stopped run from its latest checkpoint."""
        return self._answer(self.manager.resume)

    # ----- page helpers -------------------------------------------------------------------------
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
            paths = _photo_paths(photos)
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
        if status.run is None:
            return None
        key = (status.run, len(status.history), status.history[-1]["step"] if status.history else 0, status.selected_at_step, status.total, status.method)
        if self._curve[0] != key:
            self._curve = (key, render_loss_curve(status.history, status.selected_at_step, status.total, status.method != "LoRA"))
        return self._curve[1]

    def render(self, status: RunStatus, message: str = "", poll: bool = True) -> list[Any]:
        """Updates of the progress components for ``status`` (see :meth:`build` for their order)."""
        finished = status.state == "finished" and bool(status.adapter)
        resumable = status.state == "stopped" or (status.state == "failed" and status.folder is not None and any(Path(status.folder).glob("checkpoint-*")))
        return [
            status_markdown(status, message),
            progress_html(status),
            self.loss_curve(status),
            selection_markdown(status.selection, status.selected_at_step) if status.method == "LoRA-Dash" else "",
            [(path, Path(path).stem.replace("step-", "step ").replace("-", " #")) for path in reversed(status.validation_images[-12:])],
            gr.update(interactive=status.state in ("starting", "running")),
            gr.update(visible=resumable),
            gr.update(visible=finished),
            gr.update(visible=finished),
            gr.Timer(active=poll and status.active),
            f"{status.run}:finished" if finished else "",
        ]

    def tick(self) -> list[Any]:
        """The timer: the current run as it stands."""
        return self.render(self.manager.status())

    def start_from_page(self, photos: Any, dataset: Any, trigger: Any, class_name: Any, instance_prompt: Any, class_prompt: Any,
                        method: Any, preset: Any, rank: Any, directions: Any, warmup: Any, steps: Any, learning_rate: Any,
                        resolution: Any, bucketing: Any, flip: Any, prior: Any, text_encoder: Any,
                        validation_prompt: Any, validation_steps: Any, checkpointing_steps: Any) -> list[Any]:
        """The Start button: the panel's values as options, then :meth:`start`."""
        options = {
            "trigger": trigger, "class_name": class_name, "instance_prompt": instance_prompt, "class_prompt": class_prompt,
            "rank": rank, "s": directions, "t": warmup, "steps": steps, "lr": learning_rate, "resolution": resolution,
            "bucketing": bucketing, "random_flip": flip, "with_prior_preservation": prior, "train_text_encoder": text_encoder,
            "validation_prompt": validation_prompt, "validation_steps": validation_steps, "checkpointing_steps": checkpointing_steps,
        }
        try:
            status, note, name = self.start(photos, dataset, method, preset, options)
        except DashError as error:
            gr.Warning(str(error))
            return [gr.update(), gr.update(), *self.render(self.manager.status(), f"**Could not start:** {error}")]
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            logger.error("starting a training run failed", exc_info=error)
            return [gr.update(), gr.update(), *self.render(self.manager.status(), f"**Could not start:** {type(error).__name__}: {error}")]
        return [None, gr.update(choices=self.data.datasets(), value=name), *self.render(status, f"{status.message}. {note}")]

    def _action_from_page(self, action: Any, what: str) -> list[Any]:
        try:
            status = action()
        except DashError as error:
            gr.Warning(str(error))
            return self.render(self.manager.status(), f"**Could not {what}:** {error}")
        return self.render(status, status.message)

    def stop_from_page(self) -> list[Any]:
        return self._action_from_page(self.manager.stop, "stop")

    def resume_from_page(self) -> list[Any]:
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

    # ----- layout -------------------------------------------------------------------------------
    def build(self) -> None:
        """The tab's components (call inside ``with gr.Tab(...)``)."""
        preset = PRESETS[DEFAULT_PRESET]
        interval = max(1, preset.steps // 4)
        gr.Markdown(
            f"Train an adapter on {MIN_PHOTOS} to {MAX_PHOTOS} photos of one subject with the project's trainer (it runs in the "
            f"background: generating keeps working, and closing the page does not stop it). Photos and datasets live in "
            f"`{self.data.datasets_dir}`; runs are written to `{self.manager.runs_root}`.",
            elem_classes="subtle",
        )
        with gr.Row(equal_height=False):
            self.photos = gr.File(label=f"Photos of the subject ({MIN_PHOTOS} to {MAX_PHOTOS}: .jpg, .png, .webp)", file_count="multiple",
                                  type="filepath", height=150, scale=3, elem_id="train-photos")
            with gr.Column(scale=2, min_width=220):
                self.dataset = gr.Dropdown(self.data.datasets(), value=None, label="Dataset (a name for the photos, or an existing folder)",
                                           allow_custom_value=True, filterable=True, elem_id="train-dataset")
                self.photo_check = gr.Markdown("", elem_classes="subtle")
        with gr.Row():
            self.trigger = gr.Textbox(value=DEFAULT_TRIGGER, label="Trigger word", scale=1, min_width=120)
            self.class_name = gr.Textbox(value="", label="Class (from the folder or file names)", placeholder="e.g. dog", scale=2)
        with gr.Row():
            self.instance_prompt = gr.Textbox(value="", label="Instance prompt", placeholder="a photo of sks dog", scale=1)
            self.class_prompt = gr.Textbox(value="", label="Class prompt (prior preservation)", placeholder="a photo of a dog", scale=1)
        with gr.Row():
            self.method = gr.Radio(list(METHODS), value=METHODS[0], label="Method", info="LoRA-Dash, or a plain LoRA (--no_dash) as the baseline")
            self.preset = gr.Radio(list(PRESETS), value=DEFAULT_PRESET, label="Preset",
                                   info=", ".join(f"{p.name}: {p.steps} steps" for p in PRESETS.values()))
        with gr.Accordion("Advanced", open=False):
            with gr.Row():
                self.rank = gr.Number(preset.rank, precision=0, label="rank r")
                self.directions = gr.Number(preset.directions, precision=0, label="s (directions per layer)")
                self.warmup = gr.Number(preset.warmup_steps, precision=0, label="t (warm-up steps)")
                self.steps = gr.Number(preset.steps, precision=0, label="steps")
            with gr.Row():
                self.learning_rate = gr.Number(preset.learning_rate, label="learning rate")
                self.resolution = gr.Number(self.default_resolution, precision=0, label="resolution (multiple of 8)")
                self.checkpointing = gr.Number(interval, precision=0, label="checkpoint every N steps")
            with gr.Row():
                self.bucketing = gr.Checkbox(False, label="aspect-ratio bucketing")
                self.flip = gr.Checkbox(False, label="random flip")
                self.prior = gr.Checkbox(False, label="prior preservation")
                self.text_encoder = gr.Checkbox(False, label="train text encoders")
            with gr.Row():
                self.validation_prompt = gr.Textbox("", label="Validation prompt (empty: none)", scale=3)
                self.validation_steps = gr.Number(interval, precision=0, label="validation every N steps", scale=1)
        self.estimate = gr.Markdown(self.estimate_markdown(preset.steps, self.default_resolution, False, False), elem_classes="subtle", elem_id="train-estimate")
        with gr.Row():
            self.start_button = gr.Button("Start training", variant="primary", elem_id="train-start")
            self.stop_button = gr.Button("Stop", variant="stop", interactive=False, elem_id="train-stop")
            self.resume_button = gr.Button("Resume", visible=False, elem_id="train-resume")
        self.status = gr.Markdown("", elem_id="train-status")
        self.progress = gr.HTML(progress_html(RunStatus()), elem_id="train-progress")
        self.loss_plot = gr.Image(None, label="Training loss (amber: LoRA warm-up, green: LoRA-Dash)", type="pil", format="png",
                                  interactive=False, show_label=False, elem_id="loss-plot", height=300)
        self.selection = gr.Markdown("", elem_id="train-selection")
        self.validation = gr.Gallery(label="Validation images (newest first)", columns=4, height="auto", object_fit="contain", interactive=False, preview=False)
        with gr.Row():
            self.use_button = gr.Button("Use in Generate", visible=False, variant="primary", elem_id="train-use")
            self.compare_button = gr.Button("Compare with the base model", visible=False, elem_id="train-compare")
        self.timer = gr.Timer(POLL_SECONDS, active=False)
        self.finished_marker = gr.Textbox(visible=False)
        # the API's own inputs and outputs: simple, JSON-able values
        with gr.Group(visible=False):
            self.api_photos = gr.File(file_count="multiple", type="filepath", visible=False)
            self.api_dataset = gr.Textbox(visible=False)
            self.api_method = gr.Textbox(visible=False)
            self.api_preset = gr.Textbox(visible=False)
            self.api_options = gr.JSON(visible=False)
            self.api_result = gr.JSON(visible=False)
            self.api_buttons = {name: gr.Button(visible=False) for name in ("train", "train_status", "train_stop", "train_resume")}
        for files in (self.photos, self.api_photos):
            files.data_model = CheckedListFiles

    @property
    def progress_outputs(self) -> list[Any]:
        return [self.status, self.progress, self.loss_plot, self.selection, self.validation, self.stop_button, self.resume_button,
                self.use_button, self.compare_button, self.timer, self.finished_marker]

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs, train_tab: gr.Tab, other_tabs: Sequence[gr.Tab], pickers: list[Any],
             prompt: gr.Textbox, compare_mode: gr.Radio) -> None:
        """Connect the tab's events, its API endpoints and the page load (``?tab=train`` opens the tab)."""
        outputs = self.progress_outputs
        group = {"concurrency_limit": 1, "concurrency_id": TRAIN_GROUP}
        # polling reads a few small files: plain requests outside the queue, never waiting behind a render
        watch = {"queue": False, "show_progress": "hidden"}
        estimate_inputs = [self.steps, self.resolution, self.prior, self.text_encoder]
        private = {"api_visibility": "private"}

        self.start_button.click(
            self.start_from_page,
            [self.photos, self.dataset, self.trigger, self.class_name, self.instance_prompt, self.class_prompt, self.method, self.preset,
             self.rank, self.directions, self.warmup, self.steps, self.learning_rate, self.resolution, self.bucketing, self.flip,
             self.prior, self.text_encoder, self.validation_prompt, self.validation_steps, self.checkpointing],
            [self.photos, self.dataset, *outputs], api_name="train_from_page", **private, **group,
        )
        self.stop_button.click(self.stop_from_page, None, outputs, api_name="train_stop_from_page", **private, **group)
        self.resume_button.click(self.resume_from_page, None, outputs, api_name="train_resume_from_page", **private, **group)
        self.timer.tick(self.tick, None, outputs, api_name="train_tick", **private, **watch)
        train_tab.select(self.tick, None, outputs, api_name="train_tab_selected", **private, **watch)
        for tab in other_tabs:
            tab.select(lambda: gr.Timer(active=False), None, self.timer, api_name="train_tab_left", **private, queue=False)
        self.finished_marker.change(self.handlers.refresh, pickers, pickers, api_name="train_refresh_adapters", **private)

        self.preset.change(self.preset_values, [self.preset, self.resolution, self.prior, self.text_encoder],
                           [self.rank, self.directions, self.warmup, self.steps, self.learning_rate, self.validation_steps,
                            self.checkpointing, self.estimate], api_name="train_preset", **private)
        for component in estimate_inputs:
            component.change(self.estimate_markdown, estimate_inputs, self.estimate, api_name="train_estimate", **private, show_progress="hidden")
        prompt_outputs = [self.class_name, self.instance_prompt, self.class_prompt, self.validation_prompt]
        self.photos.change(self.photos_changed, [self.photos, self.dataset, self.trigger], [self.dataset, *prompt_outputs, self.photo_check],
                           api_name="train_photos", **private)
        self.dataset.input(self.dataset_picked, [self.dataset, self.photos, self.trigger], [self.dataset, *prompt_outputs, self.photo_check],
                           api_name="train_dataset", **private)
        for component in (self.trigger, self.class_name):
            component.input(self.prompts_changed, [self.trigger, self.class_name], prompt_outputs[1:], api_name="train_prompts", **private)
        self.use_button.click(self.open_generate, pickers, [tabs, prompt, *pickers], api_name="train_use", **private)
        self.compare_button.click(self.open_compare, pickers, [tabs, prompt, compare_mode, *pickers], api_name="train_compare", **private)

        buttons = self.api_buttons
        buttons["train"].click(self.api_train, [self.api_photos, self.api_dataset, self.api_method, self.api_preset, self.api_options],
                               self.api_result, api_name="train", **group)
        buttons["train_status"].click(self.api_status, None, self.api_result, api_name="train_status", concurrency_limit=8, concurrency_id="train_status")
        buttons["train_stop"].click(self.api_stop, None, self.api_result, api_name="train_stop", **group)
        buttons["train_resume"].click(self.api_resume, None, self.api_result, api_name="train_resume", **group)

        def on_load(request: gr.Request) -> list[Any]:
            wanted = (request.query_params.get("tab") if request is not None else None) or ""
            status = self.manager.status()
            tab_update = gr.Tabs(selected=wanted) if wanted in ("generate", "compare", "inspect", "train") else gr.update()
            preset = PRESETS[DEFAULT_PRESET]  # what the page starts with: the estimate may now be measured
            guess = self.estimate_markdown(preset.steps, self.default_resolution, False, False)
            return [tab_update, gr.update(choices=self.data.datasets()), guess, *self.render(status, poll=wanted == "train")]

        # outside the queue: a plain request, answered before a headless browser's screenshot is taken
        demo.load(on_load, None, [tabs, self.dataset, self.estimate, *outputs], api_name="train_on_load", queue=False, **private)
