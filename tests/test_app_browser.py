"""The app's page rendered by headless Chromium: the screenshot must show a real page, not a blank one.

Skipped only when no Chromium binary exists (``make test`` installs one where it can).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_app import make_dash_adapter, start_app

from app.ui import TITLE
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

class PageUrl(str):
    """The page's address, which also knows the app's adapters folder."""

    def __new__(cls, url: str, adapters: Path) -> "PageUrl":
        made = super().__new__(cls, url)
        made.adapters = str(adapters)
        return made


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
    adapters = tmp_path_factory.mktemp("browser") / "adapters"
    make_dash_adapter(pipe.unet, adapters / "robot_run", select=False)
    demo, url = start_app(pipe, adapters)
    yield PageUrl(url, adapters)
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


def test_train_tab_draws_the_run_progress_and_loss_curve(browser, page_url, tmp_path: Path):
    """A run found on disk (written with the trainer's own writers) shown on ``?tab=train``: the
    status, the progress bar and the loss curve in both phase colours must be drawn."""
    from test_app_train_runs import fake_run

    from app.loss_plot import DASH_COLOUR, WARMUP_COLOUR

    run = fake_run(Path(page_url.adapters), "robot-dash-quick", "finished", steps=30, total=30, switch=12)
    url = page_url + "?tab=train"
    window = (1280, 2400)
    dom = chromium(browser, url, "--dump-dom", window).stdout
    for text in ('id="loss-plot"', run.name, "step 30 / 30 (100 %)", 'aria-valuenow="30"', "Directions selected at step 12", 'data-tab-id="train" class="'):
        assert text in dom, f"{text!r} is not on the rendered Train tab"
    shot = tmp_path / "train.png"
    result = chromium(browser, url, f"--screenshot={shot}", window)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-1500:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    bar = ((blue > 190) & (red - green > 25) & (blue - red > 40)).sum()  # the violet progress bar (buttons are indigo: red ~ green)
    assert bar > 3000, f"the progress bar is not drawn full ({bar} pixels of its colour)"
    for name, colour in (("LoRA warm-up", WARMUP_COLOUR), ("LoRA-Dash", DASH_COLOUR)):
        drawn = (np.abs(pixels - colour).max(axis=-1) < 40).sum()
        assert drawn > 100, f"the {name} part of the loss curve is not drawn ({drawn} pixels of its colour)"
