"""Tests for the built-in tiny SDXL pipeline (offline, CPU, a few seconds in all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from dash_diffusion.errors import DashError
from dash_diffusion.models import tiny
from dash_diffusion.models.builtin import resolve_model_path
from dash_diffusion.models.tiny import TINY_MODEL_NAME, build_tiny_sdxl_pipeline, save_tiny_sdxl

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("unet", "vae", "text_encoder", "text_encoder_2")


@pytest.fixture(scope="module")
def pipe() -> StableDiffusionXLPipeline:
    return build_tiny_sdxl_pipeline(seed=0)


def _states(pipeline: StableDiffusionXLPipeline) -> dict[str, dict[str, torch.Tensor]]:
    return {name: getattr(pipeline, name).state_dict() for name in MODELS}


def _assert_identical(a: StableDiffusionXLPipeline, b: StableDiffusionXLPipeline) -> None:
    left, right = _states(a), _states(b)
    for name in MODELS:
        assert left[name].keys() == right[name].keys(), name
        for key, tensor in left[name].items():
            assert tensor.dtype == right[name][key].dtype, f"{name}.{key}"
            assert torch.equal(tensor, right[name][key]), f"{name}.{key} differs"


def _generate(pipeline: StableDiffusionXLPipeline) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(1234)
    result = pipeline(
        "a photo of sks robot",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=generator,
    )
    image = result.images[0]
    assert image.size == (64, 64)
    assert image.mode == "RGB"
    return np.asarray(image)


def test_same_seed_is_bit_identical(pipe: StableDiffusionXLPipeline) -> None:
    _assert_identical(pipe, build_tiny_sdxl_pipeline(seed=0))


def test_different_seed_differs(pipe: StableDiffusionXLPipeline) -> None:
    other = _states(build_tiny_sdxl_pipeline(seed=1))
    mine = _states(pipe)
    for name in MODELS:
        assert any(
            not torch.equal(tensor, other[name][key]) for key, tensor in mine[name].items()
        ), f"{name} did not change with the seed"


def test_build_leaves_global_rng_alone() -> None:
    torch.manual_seed(42)
    before = torch.get_rng_state()
    build_tiny_sdxl_pipeline(seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    drawn = torch.rand(4)
    torch.manual_seed(42)
    assert torch.equal(drawn, torch.rand(4))


def test_weights_are_finite_and_float32(pipe: StableDiffusionXLPipeline) -> None:
    for name, state in _states(pipe).items():
        for key, tensor in state.items():
            if tensor.is_floating_point():
                assert tensor.dtype == torch.float32, f"{name}.{key}"
                assert torch.isfinite(tensor).all(), f"{name}.{key}"


def test_save_and_load_round_trip_offline(pipe: StableDiffusionXLPipeline, tmp_path: Path) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    out = save_tiny_sdxl(tmp_path / "tiny", seed=0)
    assert out == (tmp_path / "tiny").absolute()
    assert (out / "model_index.json").is_file()
    assert (out / "tokenizer" / "vocab.json").is_file()
    assert (out / "tokenizer_2" / "merges.txt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"], "staging folder left behind"
    loaded = StableDiffusionXLPipeline.from_pretrained(out)
    _assert_identical(pipe, loaded)
    prompt = "a photo of sks dog"
    assert loaded.tokenizer(prompt).input_ids == pipe.tokenizer(prompt).input_ids
    assert loaded.tokenizer_2(prompt).input_ids == pipe.tokenizer_2(prompt).input_ids
    assert loaded.scheduler.config.timestep_spacing == "leading"
    assert loaded.vae.config.scaling_factor == pytest.approx(0.13025)


def test_save_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(DashError, match="not an empty folder"):
        save_tiny_sdxl(tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_generates_deterministic_64px_image(pipe: StableDiffusionXLPipeline) -> None:
    first = _generate(pipe)
    second = _generate(pipe)
    assert np.array_equal(first, second)
    assert first.std() > 0, "image is flat"


def test_resolve_builtin_materialises_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(resolve_model_path(TINY_MODEL_NAME, cache_dir=tmp_path))
    assert path == tmp_path.absolute() / tiny.TINY_CACHE_SUBDIR
    assert (path / "model_index.json").is_file()
    loaded = StableDiffusionXLPipeline.from_pretrained(path)
    assert loaded.unet.config.layers_per_block == 2

    def no_rebuild(seed: int = 0) -> StableDiffusionXLPipeline:
        raise AssertionError("the cached model should have been reused")

    monkeypatch.setattr(tiny, "build_tiny_sdxl_pipeline", no_rebuild)
    assert resolve_model_path(TINY_MODEL_NAME, cache_dir=tmp_path) == str(path)


def test_resolve_uses_env_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tiny.CACHE_ENV, str(tmp_path / "cache"))
    path = resolve_model_path(TINY_MODEL_NAME)
    assert Path(path) == (tmp_path / "cache").absolute() / tiny.TINY_CACHE_SUBDIR


def test_lost_race_reuses_winner(tmp_path: Path) -> None:
    target = save_tiny_sdxl(tmp_path / tiny.TINY_CACHE_SUBDIR)
    marker = target / "winner.txt"
    marker.write_text("first")
    assert tiny._materialise(target, seed=0, reuse_existing=True) == target
    assert marker.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [tiny.TINY_CACHE_SUBDIR]


def test_resolve_passes_other_names_through() -> None:
    assert resolve_model_path("stabilityai/stable-diffusion-xl-base-1.0") == (
        "stabilityai/stable-diffusion-xl-base-1.0"
    )
    assert resolve_model_path("/some/local/folder") == "/some/local/folder"


def test_unknown_builtin_raises(tmp_path: Path) -> None:
    with pytest.raises(DashError, match=TINY_MODEL_NAME) as caught:
        resolve_model_path("builtin:foo", cache_dir=tmp_path)
    assert "builtin:foo" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not any(tmp_path.iterdir())


def test_tokenizer_encodes_prompt(pipe: StableDiffusionXLPipeline) -> None:
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        assert tokenizer.model_max_length == 77
        assert len(tokenizer) == encoder.config.vocab_size
        assert tokenizer.bos_token_id == encoder.config.bos_token_id
        assert tokenizer.eos_token_id == encoder.config.eos_token_id
        assert tokenizer.pad_token_id == encoder.config.pad_token_id
        ids = tokenizer(
            "a photo of sks dog", padding="max_length", max_length=77, truncation=True
        ).input_ids
        assert len(ids) == 77
        assert max(ids) < encoder.config.vocab_size
        assert ids[0] == tokenizer.bos_token_id
        assert ids[-1] == tokenizer.pad_token_id
        assert tokenizer.unk_token_id not in ids[1:6], "common words should not be unknown"


def test_tokenizer_handles_any_text(pipe: StableDiffusionXLPipeline) -> None:
    text = "Ünïcödé 日本 🙂 robot's, 3.5!"
    ids = pipe.tokenizer(text).input_ids
    assert max(ids) < len(pipe.tokenizer)
    assert pipe.tokenizer.eos_token_id not in ids[1:-1], "no byte may fall back to the unknown token"
    assert pipe.tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == text.lower().replace(" ", "")


def test_cli_writes_model(tmp_path: Path) -> None:
    out = tmp_path / "cli-model"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-m", "dash_diffusion.models.tiny", "--out", str(out), "--seed", "3"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out.absolute())
    assert (out / "model_index.json").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "dash_diffusion.models.tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode != 0
    assert "not an empty folder" in again.stderr
    assert "Traceback" not in again.stderr
