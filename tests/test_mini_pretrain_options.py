"""The mini model's pretraining options ``--device`` (which device ``auto`` picks, the errors, CPU-drawn noise),
``--low_noise_share``/``--low_noise_max`` (how timesteps are drawn) and ``--mixed_precision`` (bfloat16
autocast of the forward passes)."""

from __future__ import annotations

import json

import pytest
import torch

from dash_diffusion.models.mini.architecture import build_mini_sdxl_pipeline
from dash_diffusion.models.mini.devices import forward_precision, latent_sample, resolve_device
from dash_diffusion.models.mini.pretrain import main, pretrain
from dash_diffusion.models.world import vocabulary
from tests.pretrain_helpers import small


def test_auto_takes_a_visible_gpu_and_else_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize(
    ("name", "message"),
    [("cuda", "torch sees none here; pass --device cpu"), ("gpu0", "is not a torch device"), ("meta", "is not supported")],
)
def test_a_device_this_machine_cannot_train_on_is_a_clear_error(monkeypatch, name, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


def test_cli_refuses_a_missing_gpu_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["--work_dir", str(tmp_path / "work"), "--out", str(tmp_path / "model"), "--device", "cuda"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.count("\n") == 0 and "--device cpu" in error
    assert not (tmp_path / "work").exists()


def test_latent_sample_draws_what_the_diffusers_posterior_draws_on_a_cpu():
    vae = build_mini_sdxl_pipeline(vocabulary(), seed=0).vae.eval()
    with torch.no_grad():
        posterior = vae.encode(torch.rand(2, 3, 32, 32) * 2 - 1).latent_dist
    torch.manual_seed(7)
    expected = posterior.sample()
    torch.manual_seed(7)
    assert torch.equal(latent_sample(posterior), expected)


def test_the_record_names_the_device_the_run_trained_on(tmp_path):
    torch.set_num_threads(1)
    out = pretrain(small(tmp_path, device="cpu", unet_steps=1))
    record = json.loads((out / "pretraining.json").read_text())
    assert record["machine"]["device"] == "cpu" and record["runs"][0]["device"] == "cpu"


def test_low_noise_share_draws_that_share_of_timesteps_below_the_bound_and_zero_keeps_the_old_draws():
    import numpy as np

    from dash_diffusion.models.mini.pretrain import PretrainConfig, draw_timesteps

    old = np.random.default_rng(3).integers(0, 1000, size=64)
    assert np.array_equal(draw_timesteps(np.random.default_rng(3), PretrainConfig(unet_batch=64), 1000), old)
    every_low = draw_timesteps(np.random.default_rng(3), PretrainConfig(unet_batch=64, low_noise_share=1.0, low_noise_max=50), 1000)
    assert every_low.max() < 50
    mixed = draw_timesteps(np.random.default_rng(3), PretrainConfig(unet_batch=4000, low_noise_share=0.75, low_noise_max=100), 1000)
    # 75% from [0, 100) plus 10% of the uniform quarter: 77.5% expected below 100
    assert 0.74 < (mixed < 100).mean() < 0.81 and mixed.max() >= 900


@pytest.mark.parametrize(("option", "value"), [("--low_noise_share", "1.5"), ("--low_noise_max", "0")])
def test_cli_refuses_a_low_noise_option_out_of_range(tmp_path, capsys, option, value):
    code = main(["--work_dir", str(tmp_path / "work"), "--out", str(tmp_path / "model"), option, value])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.count("\n") == 0 and option in error


def test_cli_refuses_an_unknown_mixed_precision_before_any_work(tmp_path, capsys):
    code = main(["--work_dir", str(tmp_path / "work"), "--out", str(tmp_path / "model"), "--mixed_precision", "fp16"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.count("\n") == 0 and "--mixed_precision 'fp16'" in error and "no or bf16" in error
    assert not (tmp_path / "work").exists()


def test_bf16_runs_the_forward_pass_in_bfloat16_and_no_leaves_float32():
    layer = torch.nn.Linear(4, 4)
    with forward_precision(torch.device("cpu"), "bf16"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with forward_precision(torch.device("cpu"), "no"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_a_bf16_run_keeps_float32_weights_and_optimizer_state_and_trains_differently(tmp_path):
    torch.set_num_threads(1)

    def trained_unet(name: str, precision: str) -> dict[str, torch.Tensor]:
        """The UNet stage's saved state (float32 training weights, before the float16 export)."""
        out = pretrain(small(tmp_path / name, unet_steps=2, mixed_precision=precision))
        assert json.loads((out / "pretraining.json").read_text())["runs"][0]["mixed_precision"] == precision
        (state_path,) = (tmp_path / name / "work").glob("unet-*.pt")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        assert all(moment.dtype == torch.float32 for entry in state["optimizer"]["state"].values() for moment in (entry["exp_avg"], entry["exp_avg_sq"]))
        return state["models"]["unet"]

    mixed, plain = trained_unet("a", "bf16"), trained_unet("b", "no")
    assert all(value.dtype == torch.float32 for value in mixed.values())
    assert any(not torch.equal(mixed[k], plain[k]) for k in mixed)
