"""The Train tab's parts without a browser: names and photos (datasets), options (train_requests),
presets and estimates, and the run manager finding runs on disk, judging their processes and showing a
trainer's crash in one line. One real trainer launch (a base that cannot load) checks the crash path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.datasets import DataFolder, check_photos, class_from_file_names, clean_name, prompts_for
from app.train_presets import PRESETS, estimate
from app.train_requests import check_request, make_config, parse_options
from app.loss_plot import DASH_COLOUR, WARMUP_COLOUR, render_loss_curve
from app.train_tab import selection_markdown, status_markdown
from app.training_runs import LAUNCH_RECORD, STDERR_LOG, RunManager, last_error_line, launch_command
from dash_diffusion.data.dreambooth import default_class_prompt, default_instance_prompt
from dash_diffusion.errors import DashError
from dash_diffusion.training.outputs import STEPS_LOG, append_step
from dash_diffusion.training.run_file import write_run_file
from dash_diffusion.training.run_state import RunStatus as TrainerState
from dash_diffusion.training.run_state import write_selection
from dash_diffusion.training.train_config import TrainConfig


def photos(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, name in enumerate(names):
        path = folder / name
        Image.new("RGB", (16, 16), (20 * index, 90, 160)).save(path, format="PNG")
        paths.append(path)
    return paths


def fake_run(root: Path, name: str, state: str, steps: int = 4, total: int = 4, error: str | None = None, switch: int = 2) -> Path:
    """A run folder as the trainer leaves it, written with the trainer's own writers (no training)."""
    folder = root / name
    write_run_file(TrainConfig(pretrained_model_name_or_path="builtin:tiny-sdxl", instance_dir=str(root / "dog"), output_dir=str(folder),
                               max_train_steps=total, dash_warmup_steps=2, resolution=32, instance_prompt="a photo of sks dog"), folder / "run.toml")
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    for step in range(1, steps + 1):
        append_step(folder / STEPS_LOG, {"step": step, "loss": 1.0 / step, "lr": 1e-4, "phase": "lora" if step <= switch else "dash", "seconds": 0.5})
    if steps >= switch:
        write_selection(folder, switch, {"unet": {"a.to_k": {"indices": [3, 1], "change_rates": [0.2, 0.1]}, "b.to_v": {"indices": [3, 0], "change_rates": [0.3, 0.1]}}})
    tracker = TrainerState(folder, total)
    tracker.update(state=state, step=steps, phase="dash", selected_at_step=switch, error=error, adapter=str(folder) if state == "finished" else None)
    return folder


# ----- names, photos, prompts ----------------------------------------------------------------------
def test_names_are_cleaned_or_refused():
    assert clean_name("my dog!") == "my_dog" and clean_name(" robot-2 ") == "robot-2"
    for bad in ("../../etc", "..", "/etc", "a/b", "a\\b", "C:x", "x\x00y", "", "   ", None, 5, "!!!"):
        with pytest.raises(DashError):
            clean_name(bad)


def test_class_and_prompts_follow_the_trainers_defaults(tmp_path):
    assert class_from_file_names(["dog_01.jpg", "dog_02.jpg", "cat.png"]) == "dog"
    assert class_from_file_names(["IMG_1234.JPG", "PXL_20240101_0101.jpg"]) == "object"
    folder = tmp_path / "red_car3"
    assert prompts_for("sks", "red car") == (default_instance_prompt(folder), default_class_prompt(folder))
    assert prompts_for("zwx", "dog") == ("a photo of zwx dog", "a photo of a dog")


def test_photos_are_checked_with_the_trainers_loader(tmp_path):
    good = photos(tmp_path, ["a.png", "b.png"])
    (tmp_path / "broken.jpg").write_text("not an image")
    (tmp_path / "notes.heic").write_bytes(b"\x00" * 10)
    check = check_photos([*good, tmp_path / "broken.jpg", tmp_path / "notes.heic"])
    assert (check.usable, check.unreadable, check.ignored) == (["a.png", "b.png"], ["broken.jpg"], ["notes.heic"])
    assert not check.ok and "unreadable: broken.jpg" in check.message() and "at least 3" in check.message()


def test_data_folder_stores_uploads_safely_and_refuses_links_out(tmp_path):
    data = DataFolder(tmp_path / "data")
    sources = photos(tmp_path / "in", ["Dog 1.PNG", "dog 2.png", "dog?3.png"])
    name, check = data.store_upload(sources, "")
    assert name == "dog" and check.ok
    assert sorted(p.name for p in (data.datasets_dir / "dog").iterdir()) == ["Dog_1.png", "dog_2.png", "dog_3.png"]
    assert data.store_upload(sources, "dog")[0] == "dog-2", "an existing dataset is never overwritten"
    (tmp_path / "outside").mkdir()
    photos(tmp_path / "outside", ["x.png", "y.png", "z.png"])
    (data.datasets_dir / "evil").symlink_to(tmp_path / "outside")
    assert "evil" not in data.datasets()
    with pytest.raises(DashError, match="outside the data folder"):
        data.resolve("evil")
    with pytest.raises(DashError, match="no dataset"):
        data.resolve("cat")
    assert data.class_images_dir("dog").is_relative_to(data.root)


# ----- options and presets -------------------------------------------------------------------------
def test_options_use_trainer_names_or_short_ones():
    assert parse_options('{"steps": 10, "s": 4, "t": 3, "lr": 0.001, "flip": true, "validation_prompt": ""}') == {
        "max_train_steps": 10, "dash_directions": 4, "dash_warmup_steps": 3, "learning_rate": 0.001, "random_flip": True}
    assert parse_options(None) == {} and parse_options("") == {}
    for bad in ({"steps": True}, {"steps": [1]}, {"resolution": 4096}, {"mixed_precision": "fp8"}, {"output_dir": "/tmp"}, 7):
        with pytest.raises(DashError):
            parse_options(bad)


def test_config_from_a_preset_and_options(tmp_path):
    request = check_request("LoRA-Dash", "quality", {"t": 10})
    config = make_config(request, base="builtin:tiny-sdxl", dataset_folder=tmp_path / "robot", class_dir=tmp_path / "class",
                         output_dir=tmp_path / "run", resolution=64, device="cpu")
    quality = PRESETS["quality"]
    assert (config.max_train_steps, config.rank, config.dash_directions, config.dash_warmup_steps) == (quality.steps, quality.rank, quality.directions, 10)
    assert config.instance_prompt == "a photo of sks robot" and config.no_dash is False and config.mixed_precision == "no"
    plain = make_config(check_request("LoRA", "quick", {"prior_preservation": True, "trigger": "zwx", "class_name": "toy robot"}), base="builtin:tiny-sdxl",
                        dataset_folder=tmp_path / "robot", class_dir=tmp_path / "class", output_dir=tmp_path / "run", resolution=64, device="cpu")
    assert plain.no_dash is True and plain.class_dir == str(tmp_path / "class")
    assert (plain.instance_prompt, plain.class_prompt) == ("a photo of zwx toy robot", "a photo of a toy robot")


def test_estimate_says_where_its_seconds_come_from(tmp_path):
    default = estimate(500, "builtin:tiny-sdxl", "cpu", 64, tmp_path)
    assert "default for tiny on cpu" in default.source and default.seconds_per_step == pytest.approx(0.1)
    fake_run(tmp_path, "earlier", "finished")
    measured = estimate(500, "builtin:tiny-sdxl", "cpu", 32, tmp_path)
    assert measured.source.startswith("measured on run `earlier`") and measured.seconds_per_step == pytest.approx(0.5)
    doubled = estimate(500, "builtin:tiny-sdxl", "cpu", 32, tmp_path, prior=True)
    assert doubled.seconds_per_step == pytest.approx(1.0) and "scaled" in doubled.source
    assert "default for sdxl on cuda" in estimate(500, "stabilityai/stable-diffusion-xl-base-1.0", "cuda", 1024, tmp_path).source


# ----- the run manager -----------------------------------------------------------------------------
def test_manager_rediscovers_runs_from_their_files(tmp_path):
    fake_run(tmp_path, "older", "stopped", steps=2, total=4)
    time.sleep(0.01)
    finished = fake_run(tmp_path, "newer", "finished")
    manager = RunManager(tmp_path)
    assert manager.active_run() is None, "a trainer pid that is not running this run folder is not alive"
    status = manager.status()
    assert (status.run, status.state, status.step, status.total, status.selected_at_step) == ("newer", "finished", 4, 4, 2)
    assert status.adapter == str(finished) and status.instance_prompt == "a photo of sks dog" and status.method == "LoRA-Dash"
    assert status.seconds_per_step == pytest.approx(0.5) and status.eta is None
    assert status.to_json()["selection"] == {"selected_at_step": 2, "position_counts": {"unet": [1, 1, 0, 2]}}
    older = manager.status(tmp_path / "older")
    assert older.state == "stopped" and older.step == 2
    text = status_markdown(status)
    assert "**finished**" in text and "step 4 / 4 (100 %)" in text and "--config" in text
    assert "2 layers" in selection_markdown(status.selection, 2)
    curve = np.asarray(render_loss_curve(status.history, status.selected_at_step, status.total))
    for colour in (WARMUP_COLOUR, DASH_COLOUR):
        assert np.all(curve == colour, axis=-1).sum() > 50, f"the {colour} part of the curve is missing"
    assert np.asarray(render_loss_curve([], None, 10)).std() > 0, "an empty run still draws its frame"


def test_a_dead_trainer_shows_its_last_error_line(tmp_path):
    folder = fake_run(tmp_path, "crashed", "running", steps=1, total=4)
    state = json.loads((folder / "logs" / "run_state.json").read_text())
    (folder / "logs" / "run_state.json").write_text(json.dumps({**state, "pid": 2**22 + 12345}))  # no such process
    (folder / STDERR_LOG).write_text(
        "training:  25%|##  | 1/4 [00:01<00:03, 1.00it/s]\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "subprocess.CalledProcessError: Command '['python', 'train.py']' returned non-zero exit status 1.\n")
    status = RunManager(tmp_path).status(folder)
    assert status.state == "failed" and status.error == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert last_error_line(folder / STDERR_LOG) == status.error
    (folder / STDERR_LOG).write_text("loading\nerror: no usable images in 'dog' (3 files skipped): add .jpg/.png photos\n")
    assert RunManager(tmp_path).status(folder).error.startswith("no usable images in 'dog'")


def test_a_live_trainer_found_on_disk_holds_the_slot(tmp_path):
    folder = fake_run(tmp_path, "live", "running", steps=1, total=4)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(folder / "run.toml")])
    try:
        state = json.loads((folder / "logs" / "run_state.json").read_text())
        (folder / "logs" / "run_state.json").write_text(json.dumps({**state, "pid": sleeper.pid}))
        manager = RunManager(tmp_path)
        assert manager.active_run() == folder and manager.status().state == "running"
        config = TrainConfig(pretrained_model_name_or_path="builtin:tiny-sdxl", instance_dir=str(tmp_path), output_dir=str(tmp_path / "second"))
        with pytest.raises(DashError, match="one run at a time"):
            manager.start(config)
        answer = manager.stop()
        assert (folder / "STOP").is_file() and "stop requested" in answer.message and answer.state == "stopping"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert RunManager(tmp_path).status(folder).state == "failed", "a process gone without a final state is a failure"


def test_a_crashing_trainer_is_reported_in_one_line(tmp_path):
    manager = RunManager(tmp_path / "runs")
    dog = tmp_path / "dog"
    photos(dog, ["a.png", "b.png", "c.png"])
    config = TrainConfig(pretrained_model_name_or_path="builtin:no-such-model", instance_dir=str(dog), output_dir=str(manager.runs_root / "bad"),
                         max_train_steps=2, resolution=32)
    command = launch_command(manager.runs_root / "bad" / "run.toml")
    assert command[1:6] == ["-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines"]
    started = manager.start(config)
    assert started.state == "starting" and (manager.runs_root / "bad" / "run.toml").is_file()
    assert json.loads((manager.runs_root / "bad" / LAUNCH_RECORD).read_text())["command"] == command
    manager.wait(timeout=120)
    status = manager.status()
    assert status.state == "failed", status
    assert "no-such-model" in status.error and "\n" not in status.error and "Traceback" not in status.error
    assert manager.active_run() is None


def test_command_line_has_the_data_folder_and_photo_limits():
    from app.cli import parse_args

    args = parse_args([])
    assert (args.data_dir, args.max_photo_mb, args.max_dataset_mb, args.host) == (None, 25.0, 300.0, "127.0.0.1")
    args = parse_args(["--data_dir", "photos", "--max_photo_mb", "5"])
    assert (args.data_dir, args.max_photo_mb) == ("photos", 5.0)
    with pytest.raises(SystemExit):
        parse_args(["--max_dataset_mb", "0"])
