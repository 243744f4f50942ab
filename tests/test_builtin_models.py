"""``builtin:`` model names: the registry and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dash_diffusion.errors import DashError
from dash_diffusion.models import mini
from dash_diffusion.models.builtin import BUILTIN_MODELS, resolve_model_path
from dash_diffusion.models.mini import MINI_MODEL_NAME


def test_unknown_builtin_names_every_builtin(tmp_path: Path) -> None:
    with pytest.raises(DashError) as caught:
        resolve_model_path("builtin:mini", cache_dir=tmp_path)
    assert all(name in str(caught.value) for name in BUILTIN_MODELS)


def test_missing_mini_weights_say_how_to_make_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mini, "MINI_WEIGHTS", tmp_path / "weights")
    with pytest.raises(DashError, match="mini.pretrain") as caught:
        resolve_model_path(MINI_MODEL_NAME)
    assert "\n" not in str(caught.value)


def test_mini_export_cli_without_weights_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dash_diffusion.models.mini.__main__ import main

    monkeypatch.setattr(mini, "MINI_WEIGHTS", tmp_path / "weights")
    assert main(["--out", str(tmp_path / "copy")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "mini.pretrain" in error
    assert not (tmp_path / "copy").exists()
