"""Command line of ``python -m app`` and of the ``dash-diffusion-app`` console script: options, launch
settings, and one clear line instead of a traceback.

    python -m app --base builtin:tiny-sdxl --adapters_dir outputs      # what `make app` runs
    python -m app --base stabilityai/stable-diffusion-xl-base-1.0 --port 7860

The server listens on 127.0.0.1 unless ``--host`` says otherwise; ``--share`` (a public gradio.live
link) is off unless asked for.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from dash_diffusion.errors import DashError

from .model import DEFAULT_BASE, load_pipeline
from .theme import CSS, theme
from .datasets import DEFAULT_MAX_DATASET_MB, DEFAULT_MAX_PHOTO_MB
from .uploads import DEFAULT_MAX_UPLOAD_MB

DEFAULT_HOST = "127.0.0.1"
DEFAULT_ADAPTERS_DIR = "outputs"
CONSOLE_SCRIPT = "dash-diffusion-app"


def program_name(argv0: str | None = None) -> str:
    """``dash-diffusion-app`` when run by that console script, else ``python -m app``."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return CONSOLE_SCRIPT if name.startswith(CONSOLE_SCRIPT) else "python -m app"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options of ``python -m app``."""
    parser = argparse.ArgumentParser(prog=program_name(), description="LoRA-Dash studio: generate, compare and inspect SDXL LoRA / LoRA-Dash adapters.")
    parser.add_argument("--base", default=DEFAULT_BASE, help=f"base SDXL: hub id, local diffusers folder, builtin:mini-sdxl or builtin:tiny-sdxl (default {DEFAULT_BASE})")
    parser.add_argument("--adapters_dir", default=DEFAULT_ADAPTERS_DIR, help="folder searched for trainer outputs and LoRA .safetensors files; uploads go to its uploads/ (default outputs)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    parser.add_argument("--max_upload_mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help=f"largest adapter file accepted as an upload (default {DEFAULT_MAX_UPLOAD_MB})")
    parser.add_argument("--data_dir", default=None, help="folder for the Train tab's uploaded photos (datasets/) and class images (default <adapters_dir>/app-data); runs are written to --adapters_dir")
    parser.add_argument("--max_photo_mb", type=float, default=DEFAULT_MAX_PHOTO_MB, help=f"largest training photo accepted (default {DEFAULT_MAX_PHOTO_MB:g})")
    parser.add_argument("--max_dataset_mb", type=float, default=DEFAULT_MAX_DATASET_MB, help=f"largest set of training photos accepted at once (default {DEFAULT_MAX_DATASET_MB:g})")
    args = parser.parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    for option in ("max_upload_mb", "max_photo_mb", "max_dataset_mb"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option} must be positive")
    return args


def launch_options(host: str = DEFAULT_HOST, port: int | None = None, share: bool = False, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch`` (bind address, share, upload limit, theme and CSS)."""
    return {
        "server_name": host,
        "server_port": port,
        "share": share,
        "max_file_size": f"{max_upload_mb:g}mb",
        "theme": theme(),
        "css": CSS,
        "show_error": True,
    }


def main(argv: list[str] | None = None) -> int:
    """Load the base model once, build the app and serve it until interrupted; 2 on a user error."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # no per-load chatter about text encoders without LoRA keys
    print(f"loading base model {args.base} ...", flush=True)
    try:
        pipe = load_pipeline(args.base)
    except DashError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from .ui import build_app

    try:
        demo = build_app(pipe, args.adapters_dir, base_name=args.base, max_upload_mb=args.max_upload_mb, data_dir=args.data_dir,
                         max_photo_mb=args.max_photo_mb, max_dataset_mb=args.max_dataset_mb)
    except (DashError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    demo.launch(**launch_options(args.host, args.port, args.share, args.max_upload_mb))
    return 0
