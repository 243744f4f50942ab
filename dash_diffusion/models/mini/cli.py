"""What the mini model's command lines share: an option per config field, and one-line errors."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable


def add_config_options(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """``--<field>`` for every field of the dataclass instance ``defaults``, typed and defaulted by it."""
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name}", type=type(value), default=value)


def run_reporting_errors(action: Callable[[], Path], written: str) -> int:
    """Run ``action``; print ``<written> <path>`` and return 0, or print a bad input's one-line error
    (a missing folder, a wrong value) and return 2."""
    try:
        out = action()
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{written} {out}")
    return 0
