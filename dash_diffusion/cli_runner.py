"""What every command-line entry point of the project does around its job.

A user's mistake is raised as :class:`~dash_diffusion.errors.DashError`; the entry point prints it as
one ``error: ...`` line on stderr and exits with status 2, never with a traceback. Ctrl-C exits with 130
and a line saying what was kept. Success prints the job's one-line report and exits with 0.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, Iterable

from .errors import DashError


def run_cli(job: Callable[[], str], quiet_loggers: Iterable[str], interrupted: str) -> int:
    """Run ``job`` (which parses its arguments, works and returns a one-line report) as a CLI.

    ``quiet_loggers`` are set to WARNING so that INFO from the project stays readable; ``interrupted``
    tells the user what survives a Ctrl-C. Returns the process exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        report = job()
    except DashError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return 130
    print(report)
    return 0
