"""The app's page rendered by headless Chromium: the screenshot must show a real page, not a blank one,
and the Train tab, screenshotted while a real trainer run started through the app is at work, must draw
its progress and its loss curve.

Skipped only when no Chromium binary exists (``make test`` installs one where it can).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image
from test_app import make_dash_adapter, start_app
from test_app_train import draw_photos, files, settled, wait_for

from app.loss_plot import DASH_COLOUR, WARMUP_COLOUR
from app.train_view import PROGRESS_COLOUR
from app.training_runs import LAUNCH_RECORD, RUN_STATE, pid_alive
from app.ui import TITLE
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline
from dash_diffusion.training.outputs import STEPS_LOG


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1280, 1800)


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def chromium(binary: str, url: str, action: str, window: tuple[int, int] = WINDOW) -> subprocess.CompletedProcess:
    """One headless Chromium run with a fresh profile, offline-friendly flags and ``action``
    (``--screenshot=FILE`` or ``--dump-dom``)."""
    with tempfile.TemporaryDirectory(prefix="dash-app-chromium-") as profile:
        command = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--run-all-compositor-stages-before-draw",  # the screenshot waits for images drawn after load
            f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}", "--virtual-time-budget=15000",
            action, url,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=150)


@pytest.fixture(scope="module")
def browser() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not found: install it with apt-get install chromium")
    return binary


@pytest.fixture(scope="module")
def page_url(tmp_path_factory, browser):
    pipe = build_tiny_sdxl_pipeline()
    root = tmp_path_factory.mktemp("browser")
    adapters = root / "adapters"
    make_dash_adapter(pipe.unet, adapters / "robot_run", select=False)
    demo, url = start_app(pipe, adapters, data_dir=root / "data")
    yield url
    demo.close()


def test_page_renders_in_chromium(browser, page_url, tmp_path: Path):
    shot = tmp_path / "app.png"
    result = chromium(browser, page_url, f"--screenshot={shot}")
    assert shot.is_file(), f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-1500:]}"
    image = Image.open(shot).convert("RGB")
    assert image.size == WINDOW
    pixels = np.asarray(image).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) > 200, f"only {len(colours)} colours: the page looks blank"
    assert counts.max() / counts.sum() < 0.9, "one colour covers 90% of the page: it looks blank"
    top = np.asarray(image.crop((0, 0, WINDOW[0], 400))).reshape(-1, 3)
    assert len(np.unique(top, axis=0)) > 50, "the title and adapter controls are missing at the top"


def test_rendered_page_has_the_controls(browser, page_url):
    dom = chromium(browser, page_url, "--dump-dom").stdout
    for text in (TITLE, "Adapter 1", "Generate", "Compare", "Inspect", "Upload a LoRA", "Sampler"):
        assert text in dom, f"{text!r} is not on the rendered page"


# ----- the Train tab during a live run -------------------------------------------------------------
#: A LoRA-Dash run of tiny steps (32 px, rank 2) on the app's base, builtin:tiny-sdxl, with validation
#: off: far more steps than the test waits for (it is stopped after the screenshot).
LIVE_STEPS, LIVE_WARMUP = 400, 20
LIVE_OPTIONS = {"resolution": 32, "rank": 2, "s": 3, "t": LIVE_WARMUP, "steps": LIVE_STEPS, "lr": 1e-3, "checkpoint_interval": 1000}
#: Steps the trainer's log must show before the screenshot: the whole warm-up and some LoRA-Dash steps.
SHOT_AFTER_STEP = LIVE_WARMUP + 15
TRAIN_WINDOW = (1280, 2400)
TRACK_COLOUR = (226, 232, 240)  # the progress bar's empty part (#e2e8f0)


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def logged_steps(run: Path) -> int:
    """The last step in the trainer's ``logs/steps.jsonl`` (0 before the first)."""
    try:
        lines = (run / STEPS_LOG).read_text().splitlines()
    except OSError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.strip().endswith("}")]
    return steps[-1] if steps else 0


def trainer_state(run: Path) -> str | None:
    try:
        return json.loads((run / RUN_STATE).read_text()).get("state")
    except (OSError, ValueError):
        return None


def run_processes(run: Path) -> list[int]:
    """Live processes of this run: the launcher and trainer pids it recorded, and any process whose
    command line names its run.toml (``accelerate launch`` and the trainer both do)."""
    mention = str(run)
    pids = set()
    for record in (LAUNCH_RECORD, RUN_STATE):
        try:
            pids.add(json.loads((run / record).read_text()).get("pid"))
        except (OSError, ValueError):
            pass
    proc = Path("/proc")
    if proc.is_dir():
        needle = str(run / "run.toml").encode()
        for entry in proc.iterdir():
            if entry.name.isdigit():
                try:
                    if needle in (entry / "cmdline").read_bytes():
                        pids.add(int(entry.name))
                except OSError:
                    continue
    return sorted(pid for pid in pids if pid != os.getpid() and pid_alive(pid, mention))


def wait_until_gone(run: Path, timeout: float) -> list[int]:
    """Wait for the run's processes to exit; answers those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = run_processes(run)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = run_processes(run)
    return alive


@pytest.fixture
def live_run(page_url, tmp_path):
    """A real trainer run started through the app's ``/train`` API; at teardown, pass or fail, it is
    stopped through ``/train_stop`` and its processes must be gone (any left after a minute are killed,
    and fail the test)."""
    client = Client(page_url, verbose=False)
    run = None
    try:
        started = client.predict(files(draw_photos(tmp_path / "photos", 4)), "", "LoRA-Dash", "quick", LIVE_OPTIONS, api_name="/train")
        assert started["ok"] is True, started["message"]
        run = Path(started["folder"])
        yield client, run
    finally:
        leaked = []
        try:
            if run is not None and client.predict(api_name="/train_stop")["state"] in ("starting", "running", "stopping"):
                wait_for(client, settled, timeout=60)
        finally:
            if run is not None:
                leaked = wait_until_gone(run, timeout=60)
                for pid in leaked:
                    os.kill(pid, signal.SIGKILL)
            client.close()
        assert not leaked, f"trainer processes {leaked} of run {run.name} outlived Stop (killed)"


def test_train_tab_draws_a_live_runs_progress_and_loss_curve(browser, page_url, live_run, tmp_path: Path):
    """``?tab=train`` while the run started through the app trains: the page says it is running at
    step k / total, the progress bar is drawn to k / total, and the loss curve in both phase colours;
    then Stop ends it and leaves no process behind."""
    client, run = live_run
    deadline = time.monotonic() + 120
    while not (trainer_state(run) == "running" and logged_steps(run) >= SHOT_AFTER_STEP):
        status = client.predict(api_name="/train_status")
        assert status["state"] in ("starting", "running") and time.monotonic() < deadline, f"the run did not reach step {SHOT_AFTER_STEP}: {status}"
        time.sleep(0.3)
    before = logged_steps(run)
    url = page_url + "?tab=train"
    shot = tmp_path / "train.png"
    result = chromium(browser, url, f"--screenshot={shot}", TRAIN_WINDOW)
    dom = chromium(browser, url, "--dump-dom", TRAIN_WINDOW).stdout
    after, state = logged_steps(run), trainer_state(run)
    assert state == "running" and after < LIVE_STEPS, f"the run was no longer running after the screenshots ({state} at step {after}): make it longer"

    stopping = client.predict(api_name="/train_stop")
    assert stopping["ok"] is True and "stop requested" in stopping["message"], stopping
    stopped = wait_for(client, settled, timeout=60)
    assert stopped["state"] == "stopped" and after <= stopped["step"] < LIVE_STEPS, stopped
    assert not wait_until_gone(run, timeout=30), "the trainer is still running after it reported stopped"

    # the page's text: running, at a step between the two reads of the trainer's log
    assert 'id="loss-plot"' in dom and f"Run <code>{run.name}</code>" in dom, "the Train tab does not show the run"
    assert "<strong>running</strong>" in dom, "the status does not say running"
    shown = re.search(rf"step (\d+) / {LIVE_STEPS} \(\d+ %\)", dom)
    assert shown and before - 1 <= int(shown.group(1)) <= after + 1, f"the status shows no step between {before} and {after}"
    assert f'aria-valuemax="{LIVE_STEPS}"' in dom and f"Directions selected at step {LIVE_WARMUP}" in dom

    # the screenshot: the progress bar filled to step / total, the loss curve in both phases' colours
    assert shot.is_file(), f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-1500:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def near(colour, tolerance: int = 40) -> np.ndarray:
        return np.abs(pixels - np.asarray(colour)).max(axis=-1) < tolerance

    bar = near(rgb(PROGRESS_COLOUR), 12)
    row = int(np.argmax(bar.sum(axis=1)))  # a row through the middle of the bar (its ends are rounded)
    filled = np.flatnonzero(bar[row])
    assert filled.size > 20 and filled[-1] - filled[0] + 1 == filled.size, f"no progress bar is drawn ({filled.size} pixels in its row)"
    track = near(TRACK_COLOUR, 8)[row, filled[-1] + 1 :]
    empty = int(np.argmin(track)) if not track.all() else track.size  # the bar's empty part, up to its end
    assert empty > 20, "the progress bar is full: the run was not caught mid-way"
    drawn_step = LIVE_STEPS * filled.size / (filled.size + empty)
    assert before - 2 <= drawn_step <= after + 2, f"the bar shows step {drawn_step:.1f} of {LIVE_STEPS}, the log said {before} to {after}"
    for name, colour in (("LoRA warm-up", WARMUP_COLOUR), ("LoRA-Dash", DASH_COLOUR)):
        ys, _ = np.nonzero(near(colour))
        assert ys.size, f"nothing of the {name} colour is drawn"
        curve = (ys > ys.min() + 12).sum()  # below its legend swatch (the top-most pixels of the colour)
        assert curve > 60, f"the {name} part of the loss curve is not drawn ({curve} pixels of its colour)"
