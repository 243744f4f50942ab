"""The page: adapters and prompt on the left; Generate, Compare, Inspect and Train tabs on the right.

:func:`build_app` wires the components to :class:`~app.handlers.Handlers` (and the Train tab to
:class:`~app.train_tab.TrainTab`). Every event that touches the pipeline shares one concurrency group
of size 1 (and the engine holds a lock), so two requests never use the pipeline at once; training runs
in its own process and never takes the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import gradio as gr

from .engine import Engine
from .handlers import COMPARE_BASE, COMPARE_MODES, NUM_SLOTS, WEIGHT_MAX, WEIGHT_MIN, Handlers
from .datasets import DEFAULT_MAX_DATASET_MB, DEFAULT_MAX_PHOTO_MB, DataFolder
from .library import AdapterLibrary
from .model import pick_device
from .schedulers import DEFAULT_SCHEDULER, SCHEDULER_NAMES
from .settings import MAX_GUIDANCE, MAX_IMAGES, MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE, SIDE_STEP
from .train_tab import TrainTab
from .training_runs import RunManager
from .uploads import DEFAULT_MAX_UPLOAD_MB

TITLE = "LoRA-Dash studio"
PIPELINE_GROUP = "pipeline"
INTRO = (
    "Generate with SDXL and your LoRA or LoRA-Dash adapters, compare them with the base model at the same seed, "
    "inspect the task-specific directions each LoRA-Dash run selected, and train your own adapter from a few photos."
)
#: The data folder (uploaded training photos) inside the adapters folder unless --data_dir says otherwise.
DEFAULT_DATA_SUBDIR = "app-data"
PipeOrLoader = Union[Any, Callable[[], Any]]


def _pipeline(pipe_or_loader: PipeOrLoader) -> Any:
    """The pipeline itself, or what a zero-argument loader returns (called once, here)."""
    if hasattr(pipe_or_loader, "unet") or not callable(pipe_or_loader):
        return pipe_or_loader
    return pipe_or_loader()


def _quiet_checks(*components: gr.components.Component) -> None:
    """Keep Gradio's own input checks (slider ranges, radio choices) but answer them without a traceback.

    A value out of range can only come from a hand-made API call; the caller gets Gradio's message, and
    the server log stays free of tracebacks for input mistakes.
    """
    for component in components:
        check = component.preprocess

        def preprocess(payload: Any, check: Callable[[Any], Any] = check) -> Any:
            try:
                return check(payload)
            except gr.Error as error:
                raise gr.Error(str(error.message), title=error.title, print_exception=False) from None
            except (TypeError, ValueError) as error:
                raise gr.Error(f"invalid value {payload!r}: {error}", print_exception=False) from None

        component.preprocess = preprocess  # type: ignore[method-assign]


def _adapter_dropdown(label: str, choices: list[tuple[str, str]], **kwargs: Any) -> gr.Dropdown:
    # Custom values are let through on purpose: the handler checks every name itself
    # (AdapterLibrary.resolve) and answers in words, where Gradio's own check would log a traceback.
    return gr.Dropdown(choices=choices, value="", label=label, filterable=True, allow_custom_value=True, **kwargs)


def _weight_slider(label: str = "weight") -> gr.Slider:
    return gr.Slider(WEIGHT_MIN, WEIGHT_MAX, value=1.0, step=0.05, label=label, scale=2, min_width=160)


def _slot(index: int, choices: list[tuple[str, str]]) -> tuple[gr.Dropdown, gr.Slider]:
    with gr.Row(equal_height=True):
        return _adapter_dropdown(f"Adapter {index + 1}", choices, scale=3), _weight_slider()


def build_app(
    pipe_or_loader: PipeOrLoader,
    adapters_dir: str | Path,
    *,
    base_name: str | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    data_dir: str | Path | None = None,
    max_photo_mb: float = DEFAULT_MAX_PHOTO_MB,
    max_dataset_mb: float = DEFAULT_MAX_DATASET_MB,
) -> gr.Blocks:
    """The app for one SDXL pipeline (or a zero-argument function returning it) and one adapters folder.

    ``base_name`` is what the page and the PNG parameters call the base model (and what the Train tab
    trains on); ``max_upload_mb`` limits uploaded adapter files. Training runs are written into the
    adapters folder; uploaded photos go to ``data_dir`` (default ``<adapters_dir>/app-data``), at most
    ``max_photo_mb`` per photo and ``max_dataset_mb`` per upload. The returned Blocks has its queue set
    up; call ``launch`` on it.
    """
    pipe = _pipeline(pipe_or_loader)
    name = base_name or str(getattr(pipe, "name_or_path", None) or "SDXL base")
    engine = Engine(pipe, name)
    library = AdapterLibrary(adapters_dir)
    handlers = Handlers(engine, library, int(max_upload_mb * 2**20))
    choices = handlers.choices()
    side = min(max(engine.default_size, MIN_SIDE), MAX_SIDE)
    data = DataFolder(Path(data_dir) if data_dir is not None else library.root / DEFAULT_DATA_SUBDIR, max_photo_mb, max_dataset_mb)
    trainer = TrainTab(RunManager(library.root), data, handlers, name, pick_device()[0], min(engine.default_size, 1024))

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="intro")
        gr.Markdown(f"Base model `{name}` on {engine.device} · adapters from `{library.root}`", elem_classes="subtle")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=360):
                with gr.Group():
                    gr.Markdown("### Adapters", elem_classes="section-title")
                    slots = [_slot(index, choices) for index in range(2)]
                    with gr.Accordion("More adapters", open=False):
                        slots += [_slot(index, choices) for index in range(2, NUM_SLOTS)]
                adapter_note = gr.Markdown("", elem_classes="subtle")
                with gr.Row(equal_height=True):
                    upload = gr.File(label=f"Upload a LoRA (.safetensors, up to {max_upload_mb:g} MB)", type="filepath", scale=3, height=130)
                    refresh = gr.Button("Refresh list", variant="secondary", scale=1, min_width=100, elem_id="refresh-button")
                upload_status = gr.Markdown("", elem_classes="subtle")
                prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Pick an adapter to fill in its trigger prompt, e.g. 'a photo of sks robot on the beach'")
                negative = gr.Textbox(label="Negative prompt", lines=1, placeholder="e.g. blurry, low quality")
                with gr.Accordion("Settings", open=True):
                    with gr.Row(equal_height=True):
                        seed = gr.Number(value=0, precision=0, label=f"Seed (0 to {MAX_SEED}, -1 = random)", scale=3)
                        dice = gr.Button("Random seed", scale=1, min_width=100)
                    with gr.Row():
                        steps = gr.Slider(1, MAX_STEPS, value=25, step=1, label="Steps")
                        guidance = gr.Slider(0, MAX_GUIDANCE, value=6.0, step=0.5, label="Guidance (CFG)")
                    with gr.Row():
                        width = gr.Slider(MIN_SIDE, MAX_SIDE, value=side, step=SIDE_STEP, label="Width")
                        height = gr.Slider(MIN_SIDE, MAX_SIDE, value=side, step=SIDE_STEP, label="Height")
                    with gr.Row():
                        num_images = gr.Slider(1, MAX_IMAGES, value=1, step=1, label="Images")
                        scheduler = gr.Dropdown(list(SCHEDULER_NAMES), value=DEFAULT_SCHEDULER, label="Sampler", allow_custom_value=True)
            with gr.Column(scale=7, min_width=420):
                with gr.Tabs() as tabs:
                    with gr.Tab("Generate", id="generate") as generate_tab:
                        generate = gr.Button("Generate", variant="primary", size="lg", elem_id="generate-button")
                        gallery = gr.Gallery(label="Images (PNG files with the generation parameters)", format="png", columns=2,
                                             height="auto", object_fit="contain", interactive=False, preview=False)
                        generate_status = gr.Markdown("", elem_classes="subtle")
                    with gr.Tab("Compare", id="compare") as compare_tab:
                        mode = gr.Radio(list(COMPARE_MODES), value=COMPARE_BASE, label="Compare")
                        with gr.Row(equal_height=True, visible=False) as pair_row:
                            left_name = _adapter_dropdown("Adapter A (left)", choices, scale=3)
                            left_weight = _weight_slider("weight A")
                            right_name = _adapter_dropdown("Adapter B (right)", choices, scale=3)
                            right_weight = _weight_slider("weight B")
                        compare = gr.Button("Compare at the same seed", variant="primary", size="lg", elem_id="compare-button")
                        pair = gr.Gallery(label="Left and right, same prompt and seed", format="png", columns=2, height="auto",
                                          object_fit="contain", interactive=False, preview=False)
                        compare_status = gr.Markdown("", elem_classes="subtle")
                    with gr.Tab("Inspect", id="inspect") as inspect_tab:
                        with gr.Row(equal_height=True):
                            inspect_name = _adapter_dropdown("Adapter to inspect", choices, scale=4)
                            inspect_button = gr.Button("Inspect", scale=1, min_width=100, elem_id="inspect-button")
                        metadata = gr.Markdown("Pick an adapter to see its settings and the directions it selected.")
                        heatmap = gr.Image(label="Selected directions and change rates", show_label=False, format="png", type="pil", interactive=False)
                        table = gr.Dataframe(label="Per layer", wrap=True, interactive=False, max_height=420)
                        with gr.Accordion("Metadata as JSON", open=False):
                            metadata_json = gr.JSON(label="metadata")
                    with gr.Tab("Train", id="train") as train_tab:
                        trainer.build()

        slot_inputs: list[Any] = [component for pair in slots for component in pair]
        pickers = [dropdown for dropdown, _ in slots] + [left_name, right_name, inspect_name]
        settings = [prompt, negative, seed, steps, guidance, width, height]
        pipeline_events = {"concurrency_limit": 1, "concurrency_id": PIPELINE_GROUP}
        _quiet_checks(*slot_inputs, *settings, num_images, scheduler, mode, left_name, left_weight, right_name, right_weight, inspect_name)

        generate.click(handlers.generate, settings + [num_images, scheduler] + slot_inputs, [gallery, generate_status],
                       api_name="generate", **pipeline_events)
        prompt.submit(handlers.generate, settings + [num_images, scheduler] + slot_inputs, [gallery, generate_status],
                      api_name="generate_on_enter", api_visibility="private", **pipeline_events)
        compare.click(handlers.compare, settings + [scheduler, mode] + slot_inputs + [left_name, left_weight, right_name, right_weight],
                      [pair, compare_status], api_name="compare", **pipeline_events)
        upload.upload(handlers.upload, [upload] + pickers, [upload, upload_status] + pickers, api_name="upload", **pipeline_events)
        refresh.click(handlers.refresh, pickers, pickers, api_name="refresh")
        demo.load(handlers.refresh, pickers, pickers, api_name="refresh_on_load", api_visibility="private")
        for picker in pickers[:-1]:
            picker.input(handlers.adapter_picked, [picker, prompt], [prompt, adapter_note], api_name="adapter_picked", api_visibility="private")
        inspect_name.input(handlers.inspect, [inspect_name], [metadata, heatmap, table, metadata_json], api_name="inspect_on_pick", api_visibility="private")
        inspect_button.click(handlers.inspect, [inspect_name], [metadata, heatmap, table, metadata_json], api_name="inspect")
        dice.click(handlers.new_seed, None, seed, api_name="random_seed")
        mode.change(lambda m: gr.update(visible=m != COMPARE_BASE), mode, pair_row, api_name="compare_mode", api_visibility="private")
        trainer.wire(demo, tabs, train_tab, [generate_tab, compare_tab, inspect_tab], pickers, prompt, mode)

    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo
