"""Console scripts of ``pip install``: declared in the installed metadata, importable, and runnable.

The scripts are looked for next to the interpreter running the tests (the venv's bin/), where
``pip install -e .`` (``make``) writes them.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

SCRIPTS = {
    "dash-diffusion-train": "dash_diffusion.training.cli:main",
    "dash-diffusion-app": "app.cli:main",
    "dash-diffusion-eval": "dash_diffusion.eval.cli:main",
    "dash-diffusion-tiny": "dash_diffusion.models.tiny:main",
    "dash-diffusion-mini": "dash_diffusion.models.mini.__main__:main",
}


def script_path(name: str) -> Path:
    """The wrapper pip wrote beside ``sys.executable`` (``.exe`` on Windows)."""
    folder = Path(sys.executable).parent
    return next((path for path in (folder / name, folder / f"{name}.exe") if path.is_file()), folder / name)


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(script_path(name)), *args], capture_output=True, text=True, timeout=120)


def test_entry_points_are_installed_and_importable():
    installed = {point.name: point for point in entry_points(group="console_scripts") if point.name in SCRIPTS}
    assert {name: point.value for name, point in installed.items()} == SCRIPTS
    for point in installed.values():
        assert callable(point.load()), point.value


@pytest.mark.parametrize(
    ("name", "option"),
    [("dash-diffusion-train", "--instance_dir"), ("dash-diffusion-eval", "--subject_dir"), ("dash-diffusion-app", "--adapters_dir"), ("dash-diffusion-mini", "--out")],
)
def test_help_names_the_command_and_its_options(name, option):
    done = run_script(name, "--help")
    assert done.returncode == 0, done.stderr
    assert option in done.stdout
    assert done.stdout.startswith(f"usage: {name} ")


@pytest.mark.parametrize("name", ["dash-diffusion-train", "dash-diffusion-eval"])
def test_bad_option_exits_non_zero(name):
    done = run_script(name, "--no-such-option")
    assert done.returncode != 0
    assert done.stderr.startswith("usage: ") and "Traceback" not in done.stderr, done.stderr
