"""``python -m dash_diffusion.models.mini --out DIR``: write ``builtin:mini-sdxl`` to a folder of your own
(a diffusers folder that ``StableDiffusionXLPipeline.from_pretrained`` loads)."""

from __future__ import annotations

import argparse
import sys

from dash_diffusion.cli_runner import run_cli

from . import save_mini_sdxl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the built-in mini SDXL (pretrained on the procedural world) to a folder.")
    parser.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    args = parser.parse_args(argv)
    return run_cli(lambda: str(save_mini_sdxl(args.out)), (), "nothing was written (the folder appears only when complete)")


if __name__ == "__main__":
    sys.exit(main())
