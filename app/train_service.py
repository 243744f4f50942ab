"""Starting runs for the Train tab and its API: a request checked, the photos stored as a dataset,
run.toml written and the trainer launched; each endpoint answers the run's status as JSON (see
:meth:`RunStatus.to_json <app.training_runs.RunStatus.to_json>`, plus ``ok`` and ``message``)::

    /train(photos: list of files, dataset: str, method: "LoRA-Dash" | "LoRA", preset: str, options: JSON,
           masks: list of files (optional loss masks named like the photos))
    /train_status()    /train_stop()    /train_resume()

Anything refused is a :class:`DashError` inside and a message (``ok: false``) outside, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import ListFiles
from pydantic import ValidationError

from dash_diffusion.errors import DashError

from .datasets import MAX_PHOTOS, MIN_PHOTOS, DataFolder
from .train_requests import check_request, make_config, run_name
from .training_runs import RunManager, RunStatus

logger = logging.getLogger("app")


class CheckedListFiles(ListFiles):
    """gradio's list-of-files payload, answering a malformed one (a bare path, a dict without gradio's
    file marker) with a message instead of a pydantic traceback in the server log."""

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return ListFiles.model_validate(obj, *args, **kwargs)
        except ValidationError:
            raise gr.Error("photos must be a list of uploaded image files (gradio_client: [handle_file(path), ...])", print_exception=False) from None


def photo_paths(photos: object, what: str = "photos") -> list[Path]:
    """Uploaded files as paths (gradio gives file paths; an API caller may send one path or a list)."""
    if photos is None or photos == "" or photos == []:
        return []
    items = photos if isinstance(photos, (list, tuple)) else [photos]
    paths = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            item = item["path"]
        if not isinstance(item, (str, Path)) or not str(item):
            raise DashError(f"{what} must be uploaded image files, got {type(item).__name__}")
        paths.append(Path(item))
    return paths


class TrainService:
    """Starts runs in one run manager from one data folder, and answers the Train tab's API."""

    def __init__(self, manager: RunManager, data: DataFolder, base: str, device: str, default_resolution: int) -> None:
        self.manager = manager
        self.data = data
        self.base = base
        self.device = device
        self.default_resolution = default_resolution

    def start(self, photos: object, dataset: object, method: object, preset: object, options: object,
              masks: object = None) -> tuple[RunStatus, str, str]:
        """Check the request, store the photos (and loss masks) as a dataset, write run.toml and launch
        the trainer.

        ``masks`` are optional loss masks named like the photos (:mod:`app.loss_masks`); a dataset that
        has stored masks trains with them. Returns the new run's status, a line about the photos and the
        dataset's name; :class:`DashError` for anything refused.
        """
        request = check_request(method, preset, options)
        busy = self.manager.active_run()
        if busy is not None:
            raise DashError(f"run '{busy.name}' is still in progress: stop it or wait until it ends (one run at a time)")
        paths, mask_files = photo_paths(photos), photo_paths(masks, "loss masks")
        if dataset is not None and not isinstance(dataset, str):
            raise DashError(f"dataset must be a name, got {type(dataset).__name__}")
        resolution = request.options.get("resolution", self.default_resolution)
        # every option is checked (TrainConfig included) before anything is stored
        make_config(request, base=self.base, dataset_folder=self.data.datasets_dir / "check", class_dir=self.data.root / "check",
                    output_dir=self.manager.runs_root / "check", resolution=resolution, device=self.device)
        if request.options.get("run_name"):
            run_name("", request, self.manager.runs_root)  # a bad or taken run name is refused before anything is stored
        if paths:
            name, check = self.data.store_upload(paths, dataset, mask_files)
            note = f"Stored {len(check.usable)} photos as dataset **{name}**" + (f" ({check.message()})" if check.unreadable or check.ignored else "")
        elif isinstance(dataset, str) and dataset.strip():
            name = dataset.strip()
            folder = self.data.resolve(name)
            check = self.data.check_folder(folder)
            check.raise_unless_ok()
            if mask_files:
                self.data.attach_masks(name, mask_files)
            note = f"Dataset **{name}**: {check.message()}"
        else:
            raise DashError(f"no photos given: upload {MIN_PHOTOS} to {MAX_PHOTOS} photos of the subject or pick a dataset")
        folder = self.data.resolve(name)
        mask_dir = self.data.stored_masks(name)
        if mask_dir is not None:
            note += f", trained with its {len(list(mask_dir.glob('*.png')))} loss masks"
        output = self.manager.runs_root / run_name(name, request, self.manager.runs_root)
        config = make_config(request, base=self.base, dataset_folder=folder, class_dir=self.data.class_images_dir(name),
                             output_dir=output, resolution=resolution, device=self.device, mask_dir=mask_dir)
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

    def api_train(self, photos: Any, dataset: Any, method: Any, preset: Any, options: Any, masks: Any = None) -> dict[str, Any]:
        """``/train``: start a run; answers the status JSON with ``ok`` and ``message``."""
        return self._answer(lambda: self.start(photos, dataset, method, preset, options, masks))

    def api_status(self) -> dict[str, Any]:
        """``/train_status``: the current (or last) run's state, step, total, loss, eta, adapter."""
        return self._answer(self.manager.status)

    def api_stop(self) -> dict[str, Any]:
        """``/train_stop``: ask the running trainer to checkpoint and exit."""
        return self._answer(self.manager.stop)

    def api_resume(self) -> dict[str, Any]:
        """``/train_resume``: continue the stopped run from its latest checkpoint."""
        return self._answer(self.manager.resume)
