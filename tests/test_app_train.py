"""The Train tab, driven in-process through gradio_client on the tiny SDXL with the real trainer.

One app per module: refused requests (bad photos, bad options, path traversal, a second run while one
runs), a short LoRA-Dash run from uploaded photos to an adapter that generates, and stop + resume
ending bit-identical to an uninterrupted run of the same run.toml launched from the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from test_app import generate, pixels, start_app  # noqa: E402

from app.train_presets import estimate  # noqa: E402
from app.training_runs import TRAINER_SCRIPT  # noqa: E402
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: A run of a few seconds on the tiny model: 32 px, rank 2, s 3, t 2.
TINY = {"resolution": 32, "rank": 2, "s": 3, "t": 2, "lr": 1e-3, "checkpoint_interval": 1000}
#: Long enough for /train_stop to land after step 1 and well before the end (a step takes ~0.1 s).
STOP_RUN_STEPS = 30
ADAPTER_FILES = ("pytorch_lora_weights.safetensors", "lora_dash_kohya.safetensors", "dash_adapter.safetensors")


def draw_photos(folder: Path, count: int, stem: str = "robot", size: int = 48) -> list[Path]:
    """``count`` small PNGs of a red figure on varied backgrounds."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = Image.new("RGB", (size, size + 8 * (index % 2)), (30 * index % 255, 120, 200 - 20 * index))
        draw = ImageDraw.Draw(image)
        draw.rectangle([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(220, 30, 30))
        path = folder / f"{stem}_{index}.png"
        image.save(path)
        paths.append(path)
    return paths


def files(paths) -> list:
    return [handle_file(str(path)) for path in paths]


def wait_for(client: Client, done, timeout: float = 240.0, every: float = 0.3) -> dict:
    """Poll /train_status until ``done(status)``; fails with the last status after ``timeout``."""
    deadline = time.monotonic() + timeout
    status = client.predict(api_name="/train_status")
    while not done(status):
        assert time.monotonic() < deadline, f"run did not get there in {timeout} s: {status}"
        time.sleep(every)
        status = client.predict(api_name="/train_status")
    return status


def settled(status: dict) -> bool:
    return status["state"] not in ("starting", "running", "stopping")


def read_tensors(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {name: load_file(str(folder / name)) for name in ADAPTER_FILES}


# ----- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    return build_tiny_sdxl_pipeline()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return {"root": root, "adapters": root / "adapters", "data": root / "data", "photos": draw_photos(root / "photos", 4)}


@pytest.fixture(scope="module")
def app_and_client(world, pipe):
    demo, url = start_app(pipe, world["adapters"], data_dir=world["data"], max_photo_mb=0.05)
    client = Client(url, verbose=False)
    yield demo, client
    status = client.predict(api_name="/train_stop")  # never leave a trainer behind
    if status["state"] in ("starting", "running", "stopping"):
        wait_for(client, settled, timeout=120)
    client.close()
    demo.close()


@pytest.fixture(scope="module")
def client(app_and_client):
    return app_and_client[1]


def train(client, photos=(), dataset="", method="LoRA-Dash", preset="quick", options=None) -> dict:
    return client.predict(files(photos), dataset, method, preset, options if options is not None else dict(TINY), api_name="/train")


# ----- refused requests ----------------------------------------------------------------------------
def test_bad_photos_and_options_get_messages(client, world, tmp_path, capfd):
    good = world["photos"]
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is not a photo")
    answer = train(client, [good[0], good[1], fake])
    assert answer["ok"] is False
    assert "unreadable: holiday.jpg" in answer["message"] and "at least 3 photos" in answer["message"]
    answer = train(client, [])
    assert answer["ok"] is False and "no photos given" in answer["message"]
    answer = train(client, good[:2])
    assert answer["ok"] is False and "2 usable photos" in answer["message"] and "at least 3" in answer["message"]
    many = draw_photos(tmp_path / "many", 31, size=8)
    answer = train(client, many)
    assert answer["ok"] is False and "at most 30 photos" in answer["message"]
    noise = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(noise)
    answer = train(client, [*good[:3], noise])
    assert answer["ok"] is False and "over the limit of 0.05 MB per photo" in answer["message"]
    for options, expected in (
        ({"steps": "many"}, "must be a number"),
        ({"steps": 2.5}, "whole number"),
        ({"rank": -1}, "from 1 to 128"),
        ({"lr": "nan"}, "finite"),
        ({"bucketing": "yes"}, "true or false"),
        ({"colour": "red"}, "unknown option 'colour'"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
        ({**TINY, "steps": 2, "t": 2}, "must be below the number of steps"),
        ({**TINY, "resolution": 36}, "multiple of 8"),
    ):
        answer = train(client, good, options=options)
        assert answer["ok"] is False and expected in answer["message"], (options, answer["message"])
    assert train(client, good, method="GAN")["message"].startswith("unknown method 'GAN'")
    assert train(client, good, preset="huge")["message"].startswith("unknown preset 'huge'")
    datasets = world["data"] / "datasets"
    assert not [p for p in datasets.iterdir() if not p.name.startswith(".")], "nothing refused may be stored"
    assert not any(p.name.startswith(".upload-") for p in datasets.iterdir()), "no staging folder may be left"
    for malformed in ("/etc/passwd", [{"path": str(good[0])}], 5):
        with pytest.raises(AppError, match="photos must be a list of uploaded image files"):
            client.predict(malformed, "", "LoRA-Dash", "quick", {}, api_name="/train")
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("name", ["../../etc", "..", "/etc", "a/../../b", "..\\..\\x", "x\x00y"])
def test_path_traversal_in_names_is_refused(client, world, name):
    before = sorted(p.name for p in world["root"].iterdir())
    datasets = sorted(p.name for p in (world["data"] / "datasets").iterdir())
    for photos in (world["photos"], ()):
        answer = train(client, photos, dataset=name)
        assert answer["ok"] is False, answer
        assert "refused" in answer["message"] or "not a folder" in answer["message"], answer["message"]
    answer = train(client, world["photos"], options={**TINY, "run_name": name})
    assert answer["ok"] is False and ("refused" in answer["message"] or "no letters" in answer["message"]), answer["message"]
    assert sorted(p.name for p in world["root"].iterdir()) == before
    assert sorted(p.name for p in (world["data"] / "datasets").iterdir()) == datasets, "nothing refused may be stored"
    assert not (world["root"].parent / "etc").exists()


# ----- a run from photos to a usable adapter -------------------------------------------------------
def test_run_from_uploaded_photos_gives_an_adapter_that_generates(client, world):
    options = {**TINY, "steps": 6, "validation_prompt": "a photo of sks robot on the beach", "validation_interval": 3,
               "num_validation_images": 1, "validation_inference_steps": 2}
    started = train(client, world["photos"], options=options)
    assert started["ok"] is True, started["message"]
    assert started["state"] in ("starting", "running") and started["total"] == 6
    assert "dataset **robot**" in started["message"], "the dataset is named after the photos' file names"
    assert started["instance_prompt"] == "a photo of sks robot", "the trainer's default prompt from the class"
    second = train(client, world["photos"], options=options)
    assert second["ok"] is False and "still in progress" in second["message"] and "one run at a time" in second["message"]
    assert second["run"] == started["run"]
    gallery, text = generate(client)
    assert gallery and "1 image" in text, "generation keeps working while the trainer runs"
    assert client.predict(api_name="/train_status")["state"] in ("starting", "running", "finished")

    status = wait_for(client, settled)
    assert status["state"] == "finished", status
    assert (status["step"], status["total"], status["selected_at_step"]) == (6, 6, 2)
    assert isinstance(status["loss"], float) and status["error"] is None and status["eta"] is None
    run = Path(status["folder"])
    assert status["adapter"] and Path(status["adapter"]).resolve() == run.resolve()
    assert run.parent == world["adapters"] and (run / "run.toml").is_file()
    assert status["command"] == f"accelerate launch train_dreambooth_dash.py --config {run / 'run.toml'}"
    assert sorted(Path(p).name for p in status["validation_images"]) == ["step-000003-0.png", "step-000006-0.png"]
    assert status["selection"]["selected_at_step"] == 2 and "layers" not in status["selection"]
    steps = [json.loads(line)["step"] for line in (run / "logs" / "steps.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    stored = sorted(p.name for p in (world["data"] / "datasets" / "robot").iterdir())
    assert stored == [p.name for p in world["photos"]]

    choices = client.predict(*[""] * 7, api_name="/refresh")[0]["choices"]
    assert run.name in [value for _, value in choices], "the finished run is in the adapter lists"
    base, _ = generate(client, seed=4, prompt=status["instance_prompt"])
    tuned, text = generate(client, run.name, 1.0, seed=4, prompt=status["instance_prompt"])
    assert f"{run.name} × 1" in text
    assert np.abs(pixels(tuned[0]["image"]) - pixels(base[0]["image"])).max() > 0, "the trained adapter changes the image"

    guess = estimate(100, "builtin:tiny-sdxl", "cpu", 32, world["adapters"])
    assert guess.source.startswith(f"measured on run `{run.name}`") and guess.seconds_per_step > 0


def test_a_run_with_loss_masks_trains_on_them(client, world, tmp_path):
    masks = []
    for photo in world["photos"]:
        mask = Image.new("L", Image.open(photo).size, 0)
        ImageDraw.Draw(mask).rectangle([12, 12, 36, 36], fill=255)
        masks.append(tmp_path / photo.name)
        mask.save(masks[-1])
    answer = client.predict(files(world["photos"][:3]), "masked", "LoRA-Dash", "quick", {**TINY, "steps": 3}, files(masks), api_name="/train")
    assert answer["ok"] is False and "matches no photo" in answer["message"], "a mask without its photo is refused"
    started = client.predict(files(world["photos"]), "masked", "LoRA-Dash", "quick", {**TINY, "steps": 3}, files(masks), api_name="/train")
    assert started["ok"] is True and "trained with its 4 loss masks" in started["message"], started["message"]
    status = wait_for(client, settled)
    assert status["state"] == "finished", status
    run_file = (Path(status["folder"]) / "run.toml").read_text()
    assert f'instance_mask_dir = "{world["data"] / "masks" / "masked"}"' in run_file


def test_stop_then_resume_ends_like_an_uninterrupted_run(client, world, tmp_path):
    started = train(client, dataset="robot", method="LoRA-Dash", options={**TINY, "steps": STOP_RUN_STEPS})
    assert started["ok"] is True, started["message"]
    assert "Dataset **robot**: 4 usable photos" in started["message"]
    run = Path(started["folder"])
    # the same run.toml, uninterrupted, from the command line (in the background meanwhile)
    again = tmp_path / "uninterrupted"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1", "--dynamo_backend", "no",
               str(TRAINER_SCRIPT), "--config", str(run / "run.toml"), "--output_dir", str(again)]
    log = tmp_path / "uninterrupted.log"
    with open(log, "wb") as output:
        reference = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        early = client.predict(api_name="/train_stop")  # while the trainer still loads (it clears old STOP files)
        assert early["ok"] is True and early["state"] in ("starting", "stopping"), early
        stopped = wait_for(client, settled)
        assert stopped["state"] == "stopped" and stopped["step"] < STOP_RUN_STEPS, stopped
        assert client.predict(api_name="/train_resume")["ok"] is True

        wait_for(client, lambda s: s["step"] > stopped["step"] or settled(s), every=0.1)
        stopping = client.predict(api_name="/train_stop")
        assert stopping["ok"] is True and "stop requested" in stopping["message"]
        stopped = wait_for(client, settled)
        assert stopped["state"] == "stopped", stopped
        assert 1 <= stopped["step"] < STOP_RUN_STEPS and stopped["adapter"] is None
        assert (run / f"checkpoint-{stopped['step']}").is_dir() and not (run / "STOP").exists()
        assert not (run / "pytorch_lora_weights.safetensors").exists(), "a stopped run exports nothing"

        resumed = client.predict(api_name="/train_resume")
        assert resumed["ok"] is True and resumed["run"] == run.name and "resumed" in resumed["message"]
        finished = wait_for(client, settled)
        assert finished["state"] == "finished" and finished["step"] == STOP_RUN_STEPS, finished
        steps = [json.loads(line)["step"] for line in (run / "logs" / "steps.jsonl").read_text().splitlines()]
        assert steps == list(range(1, STOP_RUN_STEPS + 1)), "every step is logged once"
        assert reference.wait(timeout=300) == 0, log.read_text()[-2000:]
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    mine, theirs = read_tensors(run), read_tensors(again)
    for name in ADAPTER_FILES:
        assert mine[name].keys() == theirs[name].keys(), name
        for key in mine[name]:
            assert torch.equal(mine[name][key], theirs[name][key]), f"{name}:{key} differs from the uninterrupted run"


def test_nothing_to_stop_or_resume_is_a_message(client):
    answer = client.predict(api_name="/train_stop")
    assert answer["ok"] is True and "nothing to stop" in answer["message"]
    answer = client.predict(api_name="/train_resume")
    assert answer["ok"] is False and "nothing to resume" in answer["message"]


def test_page_handlers_fill_in_and_open_the_adapter(world, pipe, tmp_path):
    """The Train tab's own events (not API endpoints), called in-process on the module's folders."""
    from app.datasets import DataFolder
    from app.engine import Engine
    from app.handlers import COMPARE_BASE, Handlers
    from app.library import AdapterLibrary
    from app.train_presets import PRESETS
    from app.train_tab import TrainTab
    from app.training_runs import RunManager

    handlers = Handlers(Engine(pipe, "builtin:tiny-sdxl"), AdapterLibrary(world["adapters"]), 2**20)
    tab = TrainTab(RunManager(world["adapters"]), DataFolder(world["data"]), handlers, "builtin:tiny-sdxl", "cpu", 64)
    fake = tmp_path / "notes.jpg"
    fake.write_text("text")
    dogs = draw_photos(tmp_path / "upload", 3, stem="dog")
    name, class_name, instance, klass, validation, note = tab.photos_changed([str(p) for p in [*dogs, fake]], "", "sks")
    assert (name["value"], class_name, instance, klass) == ("dog", "dog", "a photo of sks dog", "a photo of a dog")
    assert validation.startswith("a photo of sks dog") and "3 usable photos" in note and "unreadable: notes.jpg" in note
    *_, note = tab.dataset_picked("../../etc", None, "sks")
    assert "is refused" in note and "not a path" in note
    _, class_name, instance, _, _, note = tab.dataset_picked("robot", None, "zwx")
    assert (class_name, instance) == ("robot", "a photo of zwx robot") and "Dataset **robot**: 4 usable photos" in note
    assert tab.prompts_changed("sks", "red car")[:2] == ["a photo of sks red car", "a photo of a red car"]
    quick = tab.preset_values("quick", 32, False, False)
    assert quick[:5] == [PRESETS["quick"].rank, PRESETS["quick"].directions, PRESETS["quick"].warmup_steps, PRESETS["quick"].steps, PRESETS["quick"].learning_rate]
    assert "Estimated time" in quick[-1] and "measured on run" in quick[-1]
    with pytest.warns(UserWarning, match="no photos given"):  # gr.Warning outside a request: a toast in the page
        refused = tab.start_from_page(None, "", "sks", "", "", "", "LoRA-Dash", "quick", 2, 3, 2, 6, 1e-3, 32, False, False, False, False, "", 3, 1000)
    assert "Could not start" in refused[3] and "no photos given" in refused[3]

    last = tab.manager.status()
    assert last.state == "finished"
    tabs, prompt, *pickers = tab.open_generate(*[""] * 7)
    assert tabs.selected == "generate" and prompt == "a photo of sks robot"
    assert pickers[0]["value"] == last.run and last.run in [value for _, value in pickers[0]["choices"]]
    tabs, prompt, mode, *pickers = tab.open_compare(*[""] * 7)
    assert tabs.selected == "compare" and mode == COMPARE_BASE and pickers[0]["value"] == last.run
    shown = tab.render(last)
    assert shown[-2].active is False and shown[7]["visible"] is True, "a finished run stops polling and offers its buttons"
