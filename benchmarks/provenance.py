"""Where a benchmark number came from: the command, date, commit, library versions, CPU/GPU, and how busy
other processes kept the machine while it ran (the measuring VMs are shared).

Every benchmark writes its markdown section as ``provenance_header(...)`` followed by its tables.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from markdown_section import replace_section

HERE = Path(__file__).resolve().parent


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what ``platform`` knows)."""
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or "unknown CPU"


def busy_cpu_seconds() -> tuple[float, float]:
    """(CPU seconds all processes have used, CPU seconds this process and its finished children have used).

    The machine-wide figure comes from ``/proc/stat`` (NaN where it does not exist)."""
    own = sum(getattr(resource.getrusage(who), attribute) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for attribute in ("ru_utime", "ru_stime"))
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan, own
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"), own


def other_load(before: tuple[float, float], after: tuple[float, float], seconds: float) -> float:
    """Cores kept busy by other processes on average between two :func:`busy_cpu_seconds` readings."""
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / seconds)


def git_commit() -> str:
    """Short hash of the checkout's HEAD, with ``+changes`` when tracked code differs from it (markdown is
    left out of that check: the benchmarks write their results into docs/benchmarks.md)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)*.md"], cwd=HERE, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" +changes" if dirty else "")


def command_line() -> str:
    """The command that is running, with paths under the working directory made relative."""

    def short(path: str) -> str:
        with contextlib.suppress(ValueError):
            return os.path.relpath(path) if Path(path).absolute().is_relative_to(Path.cwd()) else path
        return path

    return shlex.join([short(sys.executable), short(sys.argv[0]), *sys.argv[1:]])


def environment(device: torch.device) -> str:
    """Library versions and the hardware that ran the benchmark."""
    import diffusers

    parts = [
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, Python {platform.python_version()}",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; torch threads: {torch.get_num_threads()}",
    ]
    if device.type == "cuda":
        parts.append(f"GPU: {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}")
    return "; ".join(parts)


@dataclass
class RunClock:
    """Wall time and the other processes' CPU use since :meth:`start`."""

    started: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))
    begin: float = field(default_factory=time.perf_counter)
    cpu_before: tuple[float, float] = field(default_factory=busy_cpu_seconds)

    @classmethod
    def start(cls) -> RunClock:
        return cls()

    def stop(self) -> tuple[float, float]:
        """(seconds since the start, cores other processes kept busy on average meanwhile)."""
        seconds = time.perf_counter() - self.begin
        return seconds, other_load(self.cpu_before, busy_cpu_seconds(), seconds)


def provenance_header(clock: RunClock, device: torch.device, extra: str = "", seconds_and_load: tuple[float, float] | None = None) -> str:
    """Three markdown lines: the command, when/which commit/how long/how busy, and the environment.

    ``extra`` is appended to the second line (e.g. a matmul probe); ``seconds_and_load`` is a reading
    taken earlier with :meth:`RunClock.stop` (default: read now)."""
    seconds, load = seconds_and_load or clock.stop()
    return (
        f"Command: `{command_line()}`  \n"
        f"Date: {clock.started:%Y-%m-%d %H:%M} UTC; commit {git_commit()}; this run took {seconds:.0f} s; "
        f"other processes kept {load:.2f} of {os.cpu_count()} CPU cores busy on average meanwhile{extra}.  \n"
        f"Environment: {environment(device)}.\n"
    )


def publish(table: str, markdown: Path | None, section: str, clock: RunClock, device: torch.device) -> None:
    """Print ``table``; with ``markdown``, also write it under its provenance header into ``section``."""
    print(table)
    if markdown:
        replace_section(markdown, section, provenance_header(clock, device) + "\n" + table)
