"""Shared test setup: offline hub, no analytics, few CPU threads, a throwaway model cache."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
if "DASH_DIFFUSION_CACHE" not in os.environ:  # never fill the user's real cache from the tests
    _cache = tempfile.mkdtemp(prefix="dash-diffusion-test-cache-")
    os.environ["DASH_DIFFUSION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

torch.set_num_threads(min(4, os.cpu_count() or 1))


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): they
    gain nothing from threads, and spinning threads cost a lot on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
