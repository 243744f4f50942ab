"""How save_adapter writes its files: save_precision, one failing format never losing the others, file modes."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from dash_helpers import perturb_adapter, unet_inputs, unet_output
from safetensors import safe_open
from safetensors.torch import load_file

from dash_diffusion import (
    DIFFUSERS_WEIGHT_NAME,
    KOHYA_WEIGHT_NAME,
    NATIVE_WEIGHT_NAME,
    DashConfig,
    DashError,
    dash_layers,
    inject_dash,
    load_dash_adapter,
    read_native_adapter,
    save_adapter,
)
from dash_diffusion.formats import export, safetensors_io
from dash_diffusion.formats.lora_files import check_lora_file
from dash_diffusion.formats.safetensors_io import atomic_save, current_umask
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def model():
    """A tiny SDXL UNet with a trained-looking LoRA-Dash adapter, its output and the base model's."""
    pipe = build_tiny_sdxl_pipeline(seed=0)
    inject_dash(pipe.unet, DashConfig(rank=4, alpha=8, num_directions=3, target_modules=("to_q", "to_v", "ff.net.2")))
    perturb_adapter(pipe.unet, seed=1)
    inputs = unet_inputs(pipe.unet)
    base = unet_output(build_tiny_sdxl_pipeline(seed=0).unet, inputs)
    return {"unet": pipe.unet, "inputs": inputs, "expected": unet_output(pipe.unet, inputs), "base": base}


def lora_dash_header(path) -> dict:
    with safe_open(str(path), "pt") as handle:
        return json.loads(handle.metadata()["lora_dash"])


def relative_error(got: torch.Tensor, model: dict) -> float:
    """Error of a reloaded model relative to how much the adapter moves the output."""
    return ((got - model["expected"]).abs().max() / (model["expected"] - model["base"]).abs().max()).item()


# ---------------------------------------------------------------- save_precision
def test_default_precision_is_exact_fp32_and_recorded(model, tmp_path):
    paths = save_adapter(tmp_path, model["unet"])
    for layout, path in paths.items():
        assert {v.dtype for v in load_file(path).values() if v.is_floating_point()} == {torch.float32}, layout
        assert lora_dash_header(path)["save_precision"] == "fp32"
    fresh = build_tiny_sdxl_pipeline(seed=0)
    fresh.load_lora_weights(str(tmp_path))
    assert (unet_output(fresh.unet, model["inputs"]) - model["expected"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_files_hold_half_tensors_and_int64_indices(model, tmp_path, precision):
    paths = save_adapter(tmp_path, model["unet"], save_precision=precision)
    for layout, path in paths.items():
        tensors = load_file(path)
        assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {DTYPES[precision]}, layout
        assert lora_dash_header(path)["save_precision"] == precision
    native = load_file(paths["native"])
    assert {v.dtype for k, v in native.items() if k.endswith("dash_indices")} == {torch.int64}
    assert read_native_adapter(paths["native"]).metadata["save_precision"] == precision


@pytest.mark.parametrize(("precision", "tolerance"), [("fp16", 2e-3), ("bf16", 2e-2)])
def test_half_precision_files_reload_within_their_rounding(model, tmp_path, precision, tolerance):
    """Each factor entry is rounded once (relative 2^-11 in fp16, 2^-8 in bf16), so the output moves by
    about that fraction of the adapter's own effect."""
    paths = save_adapter(tmp_path, model["unet"], save_precision=precision)
    pipe = build_tiny_sdxl_pipeline(seed=0)
    for layout in ("diffusers", "kohya"):
        assert check_lora_file(paths[layout], pipe).rank == 7
    for weight_name in (DIFFUSERS_WEIGHT_NAME, KOHYA_WEIGHT_NAME):
        stock = build_tiny_sdxl_pipeline(seed=0)
        stock.load_lora_weights(str(tmp_path), weight_name=weight_name)
        assert relative_error(unet_output(stock.unet, model["inputs"]), model) <= tolerance, weight_name
    native = build_tiny_sdxl_pipeline(seed=0).unet
    load_dash_adapter(native, paths["native"])
    assert {p.dtype for layer in dash_layers(native).values() for p in layer.parameters() if p.requires_grad} == {torch.float32}
    assert relative_error(unet_output(native, model["inputs"]), model) <= tolerance


@pytest.mark.parametrize("bad", ["fp8", "float16", "FP16", ""])
def test_bad_save_precision_is_one_line_error_and_writes_nothing(model, tmp_path, bad):
    with pytest.raises(DashError, match=f"save_precision '{bad}' is unknown: use one of fp32, fp16, bf16") as error:
        save_adapter(tmp_path / "out", model["unet"], save_precision=bad)
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()


def test_fp16_overflow_is_refused_not_written_as_inf(tmp_path):
    pipe = build_tiny_sdxl_pipeline(seed=0)
    inject_dash(pipe.unet, DashConfig(rank=2, num_directions=0, target_modules=("to_q",)))
    with torch.no_grad():
        next(iter(dash_layers(pipe.unet).values())).lora_B.weight.fill_(1e5)
    with pytest.raises(DashError, match="overflows torch.float16.*save_precision 'bf16' or 'fp32'") as error:
        save_adapter(tmp_path, pipe.unet, save_precision="fp16")
    assert "\n" not in str(error.value) and "written: none" in str(error.value)


# ---------------------------------------------------------------- one format failing
def test_failing_kohya_export_keeps_native_and_diffusers(model, tmp_path, monkeypatch):
    # bug: save_adapter wrote diffusers, then kohya raised and the lossless native file was never written
    save_adapter(tmp_path, model["unet"])  # an earlier export leaves a kohya file behind

    def broken(components):
        raise RuntimeError("no SGM name\nfor module x")

    monkeypatch.setattr(export, "kohya_state_dict", broken)
    with pytest.raises(DashError) as error:
        save_adapter(tmp_path, model["unet"], metadata={"global_step": 7})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("the kohya file failed: no SGM name for module x; written: native (")
    assert NATIVE_WEIGHT_NAME in message and DIFFUSERS_WEIGHT_NAME in message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DIFFUSERS_WEIGHT_NAME, NATIVE_WEIGHT_NAME]), "stale kohya file removed"
    for name in (DIFFUSERS_WEIGHT_NAME, NATIVE_WEIGHT_NAME):
        assert lora_dash_header(tmp_path / name)["global_step"] == 7
    fresh = build_tiny_sdxl_pipeline(seed=0)
    fresh.load_lora_weights(str(tmp_path))
    assert (unet_output(fresh.unet, model["inputs"]) - model["expected"]).abs().max().item() <= 1e-5


def test_failing_native_export_still_writes_the_lora_files(model, tmp_path, monkeypatch):
    def broken(components, dtype=torch.float32):
        raise OSError("disk quota exceeded")

    monkeypatch.setattr(export, "native_state_dict", broken)
    with pytest.raises(DashError, match=r"^the native file failed: disk quota exceeded; written: diffusers \(.*\), kohya \("):
        save_adapter(tmp_path, model["unet"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DIFFUSERS_WEIGHT_NAME, KOHYA_WEIGHT_NAME])


# ---------------------------------------------------------------- file modes
@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(model, tmp_path, umask, mask, mode):
    # bug: atomic_save wrote through tempfile.mkstemp, so every exported file was 0600 whatever the umask
    umask(mask)
    for path in save_adapter(tmp_path, model["unet"]).values():
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name


def test_umask_is_read_without_proc_and_left_unchanged(tmp_path, umask, monkeypatch):
    umask(0o027)
    assert current_umask() == 0o027
    monkeypatch.setattr(safetensors_io, "PROC_STATUS", tmp_path / "missing")
    assert current_umask() == 0o027
    path = atomic_save({"x": torch.zeros(2)}, tmp_path / "x.safetensors")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert current_umask() == 0o027
