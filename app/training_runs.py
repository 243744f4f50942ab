"""The run manager of the Train tab: the real trainer in a separate process, one run at a time.

A run is a folder in the runs folder (the app's adapters folder, so a finished run is an adapter at
once)::

    <runs>/<run>/run.toml                 every option (dash_diffusion.training.run_file); repeat the run with
                                          accelerate launch train_dreambooth_dash.py --config <runs>/<run>/run.toml
    <runs>/<run>/STOP                     written by Stop: the trainer saves a checkpoint and exits
    <runs>/<run>/logs/run_state.json      the trainer's state (running, stopped, finished, failed, step, ...)
    <runs>/<run>/logs/steps.jsonl         one line per optimizer step (loss, lr, phase, seconds)
    <runs>/<run>/logs/selection.json      the LoRA-Dash directions chosen at step t
    <runs>/<run>/validation/*.png         validation images
    <runs>/<run>/logs/app-launch.json     written here: the launcher's pid, command and start time
    <runs>/<run>/logs/trainer-stderr.log  written here: the trainer's stderr (for a crash's last line)

The trainer is started through ``python -m accelerate.commands.launch --num_processes 1``, in its own
session, so neither a closed browser nor a restarted app stops it. Progress comes from the trainer's
own files only. The manager lives in the server process and also finds runs on disk (their
``run_state.json`` and the pids in it, checked for liveness), so a reopened page, or a restarted app,
shows the run that is going on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dash_diffusion.errors import DashError
from dash_diffusion.formats.export import DIFFUSERS_WEIGHT_NAME
from dash_diffusion.training.outputs import STEPS_LOG
from dash_diffusion.training.train_config import TrainConfig

from .train_presets import RUN_FILE_NAME, format_duration, read_run_options

STOP_FILE = "STOP"
RUN_STATE = Path("logs") / "run_state.json"
SELECTION = Path("logs") / "selection.json"
LAUNCH_RECORD = Path("logs") / "app-launch.json"
STDERR_LOG = Path("logs") / "trainer-stderr.log"
STDOUT_LOG = Path("logs") / "trainer-stdout.log"
VALIDATION_DIR = "validation"
#: States in which a run holds the trainer slot.
ACTIVE_STATES = ("starting", "running", "stopping")
#: The trainer script beside the packages (a source checkout); else the console script.
TRAINER_SCRIPT = Path(__file__).resolve().parents[1] / "train_dreambooth_dash.py"
#: Steps averaged for the ETA.
ETA_WINDOW = 20


def trainer_entry() -> str:
    """The script accelerate launches: ``train_dreambooth_dash.py`` of this checkout, else the
    ``dash-diffusion-train`` console script of this environment."""
    if TRAINER_SCRIPT.is_file():
        return str(TRAINER_SCRIPT)
    beside = Path(sys.executable).with_name("dash-diffusion-train")
    found = str(beside) if beside.is_file() else shutil.which("dash-diffusion-train")
    if not found:
        raise DashError("cannot find the trainer (train_dreambooth_dash.py or dash-diffusion-train): reinstall dash_diffusion")
    return found


def launch_command(run_file: Path, resume: bool = False, python: str | None = None) -> list[str]:
    """``python -m accelerate.commands.launch --num_processes 1 <trainer> --config <run.toml>``."""
    command = [python or sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
               "--dynamo_backend", "no", trainer_entry(), "--config", str(run_file)]
    if resume:
        command += ["--resume_from_checkpoint", "latest"]
    return command


def repeat_command(run_file: Path) -> str:
    """What a user types to run the same training again from a terminal."""
    return f"accelerate launch train_dreambooth_dash.py --config {run_file}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    staging.write_text(json.dumps(data, indent=2))
    os.replace(staging, path)


def _fresh(state: object, launched_at: float) -> bool:
    """Whether a ``run_state.json`` was written by the trainer of a launch at ``launched_at`` (its
    ``updated`` time is the trainer's ``time.time()``), not by an earlier one."""
    if not isinstance(state, dict):
        return False
    updated = state.get("updated")
    return isinstance(updated, (int, float)) and updated >= launched_at


def pid_alive(pid: object, mentions: str | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, where ``/proc`` tells, its command line
    contains ``mentions`` (guards against a reused pid)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    proc = Path("/proc") / str(pid)
    if not proc.is_dir():
        return True
    try:
        status = (proc / "status").read_text()
        if any(line.startswith("State:") and "Z" in line.split()[1:2] for line in status.splitlines()):
            return False
        command = (proc / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")
    except OSError:
        return False
    return mentions is None or mentions in command


def last_error_line(log: Path, offset: int = 0, any_line: bool = True) -> str | None:
    """The most telling line of a trainer's stderr from ``offset``: its ``error: ...`` line, else the
    last exception line, else (with ``any_line``) the last line; progress bars are skipped."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, offset))
            text = handle.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line.rsplit("\r", 1)[-1].strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("training:") and "it/s]" not in line]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and "CalledProcessError" not in head and " " not in head:
            return line
    return lines[-1][:400] if lines and any_line else None


@dataclass
class RunStatus:
    """What the page and ``/train_status`` show about one run."""

    run: str | None = None  # folder name
    folder: str | None = None
    state: str = "none"  # none, starting, running, stopping, stopped, finished, failed
    step: int = 0
    total: int | None = None
    loss: float | None = None
    lr: float | None = None
    phase: str | None = None
    selected_at_step: int | None = None
    seconds_per_step: float | None = None
    eta: float | None = None  # seconds
    adapter: str | None = None  # path of the exported adapter folder
    error: str | None = None
    instance_prompt: str | None = None
    method: str | None = None
    command: str | None = None
    message: str = ""
    selection: Any = None
    validation_images: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        """The JSON of ``/train_status`` (the loss history left out)."""
        data = asdict(self)
        data.pop("history")
        if isinstance(self.selection, dict):  # the per-layer table stays in logs/selection.json
            data["selection"] = {key: value for key, value in self.selection.items() if key != "layers"}
        data["eta_text"] = format_duration(self.eta) if self.eta is not None else None
        return data


def read_steps(log: Path) -> list[dict[str, Any]]:
    """The records of ``logs/steps.jsonl`` (a line being written, or a damaged one, is skipped)."""
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


class RunManager:
    """Starts, stops, resumes and watches training runs in ``runs_root``; at most one at a time."""

    def __init__(self, runs_root: str | Path, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.runs_root = Path(runs_root).expanduser().absolute()
        self.runs_root.mkdir(parents=True, exist_ok=True)
        self.python = python or sys.executable
        self.env = env
        self._lock = threading.RLock()
        self._processes: dict[Path, subprocess.Popen] = {}
        self._current: Path | None = None

    # ----- finding runs ---------------------------------------------------------------------------
    def run_folder(self, name: str) -> Path:
        """The folder of run ``name``; :class:`DashError` when it is not a run inside the runs folder."""
        folder = self.runs_root / name
        if "/" in name or "\\" in name or name in ("", ".", "..") or not folder.resolve().is_relative_to(self.runs_root.resolve()):
            raise DashError(f"run {name!r} is not a folder in {self.runs_root}")
        if not (folder / RUN_FILE_NAME).is_file():
            raise DashError(f"there is no run {name!r} in {self.runs_root} (no {RUN_FILE_NAME})")
        return folder

    def runs(self) -> list[Path]:
        """Run folders (a ``run.toml`` or a ``logs/run_state.json``), newest first."""
        found = []
        try:
            entries = list(self.runs_root.iterdir())
        except OSError:
            return []
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                marks = [entry / RUN_STATE, entry / LAUNCH_RECORD, entry / RUN_FILE_NAME]
                times = [mark.stat().st_mtime for mark in marks if mark.is_file()]
                if times:
                    found.append((max(times), entry))
        return [entry for _, entry in sorted(found, key=lambda item: item[0], reverse=True)]

    def _alive(self, folder: Path) -> bool:
        process = self._processes.get(folder)
        if process is not None and process.poll() is None:
            return True
        mention = str(folder)
        state = _read_json(folder / RUN_STATE) or {}
        launch = _read_json(folder / LAUNCH_RECORD) or {}
        return pid_alive(state.get("pid"), mention) or pid_alive(launch.get("pid"), mention)

    def _busy(self, folder: Path) -> bool:
        """Whether the run's trainer is alive and has not yet reported its end (a trainer that wrote
        stopped, finished or failed is only tearing down)."""
        if not self._alive(folder):
            return False
        if self._trainer_state_fresh(folder):
            return (_read_json(folder / RUN_STATE) or {}).get("state") not in ("stopped", "finished", "failed")
        return True

    def active_run(self) -> Path | None:
        """The run whose trainer is at work (started here or found on disk), if any."""
        with self._lock:
            if self._current is not None and self._busy(self._current):
                return self._current
            for folder in self.runs():
                if self._busy(folder):
                    self._current = folder
                    return folder
        return None

    def current(self) -> Path | None:
        """The run the page shows: the live one, else the last one started here, else the newest on disk."""
        active = self.active_run()
        if active is not None:
            return active
        if self._current is not None and self._current.is_dir():
            return self._current
        runs = self.runs()
        return runs[0] if runs else None

    # ----- actions --------------------------------------------------------------------------------
    def _refuse_if_busy(self) -> None:
        active = self.active_run()
        if active is not None:
            raise DashError(f"run '{active.name}' is still in progress: stop it or wait until it ends (one run at a time)")

    def start(self, config: TrainConfig) -> RunStatus:
        """Write ``run.toml`` into the run's (new) output folder and launch the trainer on it."""
        from dash_diffusion.training.run_file import write_run_file

        with self._lock:
            self._refuse_if_busy()
            folder = Path(config.output_dir)
            if not folder.absolute().parent.resolve() == self.runs_root.resolve():
                raise DashError(f"run folder {folder} is not directly inside {self.runs_root}")
            if folder.exists():
                raise DashError(f"a folder named '{folder.name}' already exists in {self.runs_root}: choose another run name")
            (folder / "logs").mkdir(parents=True)
            run_file = folder / RUN_FILE_NAME
            write_run_file(config, run_file)
            return self._launch(folder, resume=False)

    def resume(self, name: str | None = None) -> RunStatus:
        """Relaunch a stopped (or failed) run from its latest checkpoint (from the start if it has none)."""
        with self._lock:
            self._refuse_if_busy()
            folder = self.run_folder(name) if name else self.current()
            if folder is None:
                raise DashError("there is no run to resume: start one first")
            status = self.status(folder)
            if status.state == "finished":
                raise DashError(f"run '{folder.name}' has finished: there is nothing to resume")
            return self._launch(folder, resume=True)

    def stop(self) -> RunStatus:
        """Ask the running trainer to save a checkpoint and exit (the ``STOP`` file)."""
        with self._lock:
            folder = self.active_run()
            if folder is None:
                current = self.current()
                status = self.status(current) if current else RunStatus()
                status.message = "no run is in progress: nothing to stop"
                return status
            (folder / STOP_FILE).write_text("stop requested from the app\n")
            status = self.status(folder)
            if status.state in ("starting", "stopping") and not self._trainer_state_fresh(folder):
                # the trainer removes a STOP file left from before it started: ask again once it runs
                threading.Thread(target=self._repeat_stop, args=(folder,), name="dash-stop", daemon=True).start()
            status.message = f"stop requested: run '{folder.name}' saves a checkpoint at the current step and exits; Resume continues it"
            return status

    def _trainer_state_fresh(self, folder: Path) -> bool:
        """Whether the trainer of the latest launch has written its ``run_state.json`` yet."""
        launch = _read_json(folder / LAUNCH_RECORD) or {}
        return _fresh(_read_json(folder / RUN_STATE), float(launch.get("started") or 0.0))

    def _repeat_stop(self, folder: Path, timeout: float = 3600.0) -> None:
        """Write ``STOP`` again once the trainer has started (and cleared stale ones), unless it already stopped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(folder):
            if self._trainer_state_fresh(folder):
                state = (_read_json(folder / RUN_STATE) or {}).get("state")
                if state == "running" and not (folder / STOP_FILE).exists():
                    (folder / STOP_FILE).write_text("stop requested from the app\n")
                return
            time.sleep(0.2)

    def _launch(self, folder: Path, resume: bool) -> RunStatus:
        (folder / STOP_FILE).unlink(missing_ok=True)
        command = launch_command(folder / RUN_FILE_NAME, resume=resume, python=self.python)
        logs = folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        stderr_path = folder / STDERR_LOG
        with open(stderr_path, "ab") as stderr, open(folder / STDOUT_LOG, "ab") as stdout:
            stderr.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            stderr.flush()
            offset = stderr.tell()
            started = time.time()  # before the process exists: its run_state.json is newer
            try:
                process = subprocess.Popen(command, cwd=str(self.runs_root), env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)
            except OSError as error:
                raise DashError(f"cannot start the trainer ({error.strerror or error})") from error
        self._processes[folder] = process
        self._current = folder
        _write_json(folder / LAUNCH_RECORD, {"pid": process.pid, "command": command, "started": started, "resume": resume, "stderr_offset": offset})
        status = self.status(folder)
        status.message = f"{'resumed' if resume else 'started'} run '{folder.name}'"
        return status

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the trainer processes started here to exit (tests, shutdown)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for process in list(self._processes.values()):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                process.wait(remaining)
            except subprocess.TimeoutExpired:
                return

    # ----- status ---------------------------------------------------------------------------------
    def status(self, folder: Path | None = None) -> RunStatus:
        """Where a run (default: :meth:`current`) stands, read from its files and its process."""
        folder = folder if folder is not None else self.current()
        if folder is None:
            return RunStatus(message="no training run yet")
        with self._lock:
            return self._status(folder)

    def _status(self, folder: Path) -> RunStatus:
        options = read_run_options(folder) or {}
        state_json = _read_json(folder / RUN_STATE)
        state_json = state_json if isinstance(state_json, dict) else None
        launch = _read_json(folder / LAUNCH_RECORD) or {}
        process = self._processes.get(folder)
        exit_code = process.poll() if process is not None else None
        alive = self._alive(folder)
        launched_at = float(launch.get("started") or 0.0)
        fresh = _fresh(state_json, launched_at)
        trainer_state = state_json.get("state") if fresh and state_json else None
        records = read_steps(folder / STEPS_LOG)
        has_adapter = (folder / DIFFUSERS_WEIGHT_NAME).is_file()
        error = None
        if alive:
            if trainer_state in ("stopped", "finished", "failed"):
                state = trainer_state  # the trainer is on its way out
            elif trainer_state is None:
                state = "starting"
            else:
                state = "running"
            if state in ("starting", "running") and (folder / STOP_FILE).exists():
                state = "stopping"
        elif trainer_state in ("stopped", "finished", "failed"):
            state = trainer_state
        elif trainer_state is None and exit_code in (0, None):
            # no run_state.json from this launch: judge by what the trainer left behind
            checkpoints = any(folder.glob("checkpoint-*"))
            if has_adapter:
                state = "finished"
            elif checkpoints and (exit_code == 0 or not last_error_line(folder / STDERR_LOG, int(launch.get("stderr_offset") or 0), any_line=False)):
                state = "stopped"
            else:
                state = "failed"
        else:
            state = "failed"  # a non-zero exit, or "running" in run_state.json with no process left
        if state == "failed":
            error = (state_json or {}).get("error") if fresh else None
            error = error or last_error_line(folder / STDERR_LOG, int(launch.get("stderr_offset") or 0))
            if not error:
                code = f" (exit status {exit_code})" if exit_code is not None else ""
                error = f"the trainer exited{code} without saying why: see {folder / STDERR_LOG}"
        info = state_json or {}
        step = info.get("step") if fresh and isinstance(info.get("step"), int) else (records[-1]["step"] if records else 0)
        total = info.get("total_steps") if isinstance(info.get("total_steps"), int) and info["total_steps"] > 0 else options.get("max_train_steps")
        selected = info.get("selected_at_step") if isinstance(info.get("selected_at_step"), int) else None
        if selected is None:
            first_dash = next((r["step"] for r in records if r.get("phase") == "dash"), None)
            selected = first_dash - 1 if first_dash is not None else None
        last = records[-1] if records else {}
        seconds = [float(r["seconds"]) for r in records[-ETA_WINDOW:] if isinstance(r.get("seconds"), (int, float))]
        per_step = sum(seconds) / len(seconds) if seconds else None
        eta = max(0, total - step) * per_step if (per_step is not None and isinstance(total, int) and state in ACTIVE_STATES) else None
        adapter = info.get("adapter") if fresh else None
        if state == "finished" and not adapter and has_adapter:
            adapter = str(folder)
        selection = _read_json(folder / SELECTION)
        validation = sorted(str(path) for path in (folder / VALIDATION_DIR).glob("*.png")) if (folder / VALIDATION_DIR).is_dir() else []
        return RunStatus(
            run=folder.name, folder=str(folder), state=state, step=int(step or 0), total=total if isinstance(total, int) else None,
            loss=last.get("loss"), lr=last.get("lr"), phase=(info.get("phase") if fresh else None) or last.get("phase"), selected_at_step=selected,
            seconds_per_step=per_step, eta=eta, adapter=adapter if state == "finished" else None, error=error,
            instance_prompt=options.get("instance_prompt"), method="LoRA" if options.get("no_dash") else "LoRA-Dash",
            command=repeat_command(folder / RUN_FILE_NAME), selection=selection, validation_images=validation, history=records,
        )
