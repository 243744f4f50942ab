"""The Train tab: photos in, a LoRA-Dash (or LoRA) adapter out, on the real trainer in the background.

Layout: photos (or a dataset folder of the data folder), trigger word and class with the prompts they
make, method and preset with a time estimate, an advanced panel, Start / Stop / Resume, then the live
progress of the run (polled with a ``gr.Timer`` while the tab shows a running run): step, loss curve
coloured by phase, ETA, the selected directions and the validation images. A finished run offers
buttons that open Generate or Compare with its adapter.

This module is the layout and the wiring; the parts live beside it:

- :mod:`app.train_service`: starting runs and the API (``/train``, ``/train_status``, ``/train_stop``,
  ``/train_resume``);
- :mod:`app.train_handlers`: the page's events;
- :mod:`app.train_view`: how a run is shown (status lines, progress bar, loss curve).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from .datasets import DEFAULT_TRIGGER, MAX_PHOTOS, MIN_PHOTOS
from .train_handlers import TrainPageHandlers
from .train_presets import DEFAULT_PRESET, PRESETS
from .train_requests import METHODS
from .train_service import CheckedListFiles
from .train_view import progress_html, selection_markdown, status_markdown
from .training_runs import RunStatus

__all__ = ["POLL_SECONDS", "TRAIN_GROUP", "TrainTab", "progress_html", "selection_markdown", "status_markdown"]

POLL_SECONDS = 1.5
TRAIN_GROUP = "train"


class TrainTab(TrainPageHandlers):
    """The Train tab: its layout and wiring, on top of the page handlers and the API of
    :class:`~app.train_handlers.TrainPageHandlers`, bound to one run manager and data folder."""

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
            self.masks = gr.File(label="Loss masks (optional): greyscale images named like the photos, white = subject, black = ignored",
                                 file_count="multiple", type="filepath", height=110, elem_id="train-masks")
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
            self.api_masks = gr.File(file_count="multiple", type="filepath", visible=False)
            self.api_result = gr.JSON(visible=False)
            self.api_buttons = {name: gr.Button(visible=False) for name in ("train", "train_status", "train_stop", "train_resume")}
        for files in (self.photos, self.api_photos, self.masks, self.api_masks):
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
             self.prior, self.text_encoder, self.validation_prompt, self.validation_steps, self.checkpointing, self.masks],
            [self.photos, self.dataset, self.masks, *outputs], api_name="train_from_page", **private, **group,
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
        buttons["train"].click(self.api_train, [self.api_photos, self.api_dataset, self.api_method, self.api_preset, self.api_options, self.api_masks],
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
