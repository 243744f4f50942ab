"""Run files: every option of a training run as TOML, written by each run and read by ``--config``.

A run writes ``output_dir/run.toml`` (:data:`RUN_FILE`) before its first step: every
:class:`~.train_config.TrainConfig` option that is not None, under ``# group`` comments, with the command
that repeats the run in its header. ``train_dreambooth_dash.py --config run.toml`` reads it back; flags
given on the command line override the file. The file is flat (``key = value``, no tables); an option
left out takes its default, which is how None is written (TOML has no null). Relative paths in it
(``instance_dir``, ``class_dir``, ``output_dir``...) are relative to the working directory of the
command that reads it, as the flags are.
"""

from __future__ import annotations

import difflib
import math
import shlex
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import DashError
from ..formats.safetensors_io import atomic_write_text
from .train_config import GROUP_TITLES, TrainConfig

RUN_FILE = "run.toml"

#: What each annotation of a TrainConfig field accepts from TOML, and its name in error messages.
_KINDS = {"bool": "a boolean (true or false)", "int": "an integer", "float": "a number", "str": "a string"}
_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", dict: "table", list: "array"}
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


# ---------------------------------------------------------------------------------------------- writing
def toml_value(value: bool | int | float | str) -> str:
    """``value`` as a TOML literal that reads back equal (floats exactly: ``repr`` is shortest round-trip)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)  # 'inf', '-inf', '1e-08', '0.0001': all valid TOML floats
    if isinstance(value, str):
        return '"' + "".join(_escape(char) for char in value) + '"'
    raise DashError(f"cannot write {type(value).__name__} {value!r} into a run file: options are booleans, numbers or strings")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04X}"
    return char


def run_file_text(config: TrainConfig, path: Path) -> str:
    """The TOML text of ``config`` (every option that is not None, grouped, with a header)."""
    command = shlex.quote(str(path)).replace("\n", "\\n")
    lines = [
        "# A dash_diffusion training run: every option of train_dreambooth_dash.py that is not None.",
        f"# Repeat the run with:  accelerate launch train_dreambooth_dash.py --config {command}",
        "# Flags given on the command line override this file. Relative paths are relative to the working",
        "# directory of the command that reads it. Options left out take their default (--help lists them).",
    ]
    values = config.to_dict()
    for group, title in GROUP_TITLES.items():
        members = [item.name for item in fields(TrainConfig) if item.metadata["group"] == group and values[item.name] is not None]
        if members:
            lines += ["", f"# {title}"] + [f"{name} = {toml_value(values[name])}" for name in members]
    return "\n".join(lines) + "\n"


def write_run_file(config: TrainConfig, path: Path) -> None:
    """Write ``config`` to ``path`` as a run file, atomically (temporary file in the same folder, then
    ``os.replace``)."""
    atomic_write_text(Path(path), run_file_text(config, Path(path)))


# ---------------------------------------------------------------------------------------------- reading
def _aliases() -> dict[str, str]:
    """Other spellings of options (``instance_data_dir``) mapped to the field names."""
    return {alias.lstrip("-"): item.name for item in fields(TrainConfig) for alias in item.metadata.get("aliases", ())}


def _unknown(path: Path, key: str) -> DashError:
    close = difflib.get_close_matches(key, TrainConfig.field_names(), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return DashError(f"run file {path}: unknown option '{key}' ({hint}see --help for the options)")


def _checked(path: Path, key: str, value: Any, annotation: str) -> Any:
    """``value`` if it has the type of the field (an integer is also a number), else a DashError."""
    kind = annotation.replace(" | None", "").strip()
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
    }.get(kind, False)
    if not ok:
        got = _TOML_TYPES.get(type(value), type(value).__name__)
        shown = f" {value!r}" if isinstance(value, (bool, int, float, str)) else ""
        raise DashError(f"run file {path}: option '{key}' must be {_KINDS.get(kind, kind)}, got the {got}{shown}; fix the value or leave the option out for its default")
    return float(value) if kind == "float" else value


def _parse(path: Path) -> dict[str, Any]:
    """The TOML table of ``path``; one-line errors for a missing file or bad TOML."""
    try:
        text = path.read_bytes()
    except OSError as error:
        raise DashError(f"cannot read run file {path} ({error.strerror or error}): check the path given to --config") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        message = " ".join(str(error).split())
        raise DashError(f"run file {path} is not valid TOML ({message}): fix it, or write a new one from a run's {RUN_FILE}") from None


def read_run_file(path: Path) -> dict[str, Any]:
    """The options of the run file ``path`` by field name, checked against :class:`TrainConfig`'s fields
    (unknown options and values of the wrong type are one-line :class:`DashError` s; aliases such as
    ``instance_data_dir`` are accepted). The values are not range-checked: ``TrainConfig`` does that."""
    path = Path(path)
    types = {item.name: str(item.type) for item in fields(TrainConfig)}
    aliases = _aliases()
    options: dict[str, Any] = {}
    for key, value in _parse(path).items():
        name = aliases.get(key, key)
        if name not in types:
            if isinstance(value, dict):
                raise DashError(f"run file {path}: unexpected table [{key}]: put every option at the top level (key = value)")
            raise _unknown(path, key)
        if name in options:
            raise DashError(f"run file {path}: '{key}' and '{name}' are the same option: keep one")
        options[name] = _checked(path, key, value, types[name])
    return options


def read_run_config(path: Path, **overrides: Any) -> TrainConfig:
    """The checked :class:`TrainConfig` of a run file, with ``overrides`` (field names) taking precedence."""
    return TrainConfig(**{**read_run_file(path), **overrides})
