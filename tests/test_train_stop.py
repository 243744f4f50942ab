"""Stopping a run on request (STOP file, SIGTERM), resuming it exactly, and logs/run_state.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import assert_same_files, draw_subject, tiny_config

import dash_diffusion.training.step as step_module
import dash_diffusion.training.train as train_module
from dash_diffusion import DashError
from dash_diffusion.training.checkpoint import checkpoint_dirs
from dash_diffusion.training.cli import main
from dash_diffusion.training.run_state import read_run_state
from dash_diffusion.training.stop import TrainingStopped

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
OPTIONS = dict(max_train_steps=6, dash_warmup_steps=3, checkpointing_steps=1000, gradient_accumulation_steps=2, random_flip=True, lr_scheduler="cosine", lora_dropout=0.1)


def after_step(monkeypatch, at_step: int, action) -> None:
    """Run ``action(run)`` right after optimizer step ``at_step`` (its logs, checkpoint and validation)."""
    real_end_of_step = train_module.end_of_step

    def end_of_step(run, *args, **kwargs):
        record = real_end_of_step(run, *args, **kwargs)
        if run.global_step == at_step:
            action(run)
        return record

    monkeypatch.setattr(train_module, "end_of_step", end_of_step)


def test_stop_file_stops_with_a_checkpoint_and_resume_is_bit_identical(tmp_path, monkeypatch):
    reference = train_module.train(tiny_config(tmp_path / "a", **OPTIONS))
    config = tiny_config(tmp_path / "b", **OPTIONS)
    after_step(monkeypatch, 4, lambda run: (run.config.output_path / "STOP").touch())
    with pytest.raises(TrainingStopped, match=r"^stopped after step 4; resume with --resume_from_checkpoint latest$") as stopped:
        train_module.train(config)
    out = config.output_path
    assert stopped.value.step == 4 and stopped.value.checkpoint == out / "checkpoint-4" and stopped.value.reason == "STOP file"
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-4"]
    assert not (out / "STOP").exists() and not (out / "pytorch_lora_weights.safetensors").exists()
    state = read_run_state(out)
    assert {k: state[k] for k in ("state", "step", "total_steps", "phase", "selected_at_step", "adapter", "error", "pid")} == {"state": "stopped", "step": 4, "total_steps": 6, "phase": "dash", "selected_at_step": 3, "adapter": None, "error": None, "pid": os.getpid()}
    selection = json.loads((out / "logs" / "selection.json").read_text())
    assert selection["selected_at_step"] == 3 and len(selection["layers"]["unet"]) > 0
    assert sum(selection["position_counts"]["unet"]) == sum(len(layer["indices"]) for layer in selection["layers"]["unet"].values())

    monkeypatch.undo()
    resumed = train_module.train(tiny_config(tmp_path / "b", resume_from_checkpoint="latest", **OPTIONS))
    assert_same_files(reference, resumed, atol=0)
    state = read_run_state(out)
    assert (state["state"], state["step"], state["phase"], state["selected_at_step"], state["adapter"]) == ("finished", 6, "dash", 3, str(out.resolve()))
    assert [json.loads(line)["step"] for line in (out / "logs" / "steps.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert (out / "logs" / "selection.json").is_file()  # the resumed run keeps the selection it restored


def test_sigterm_stops_after_the_step_and_a_second_one_acts_as_before(tmp_path, monkeypatch):
    saves = []
    real_save = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint", lambda *args: saves.append(args[2]) or real_save(*args))
    before = signal.getsignal(signal.SIGTERM)

    def terminate(run):
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, before), "no SIGTERM handler: raising would end pytest"
        signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) == before  # a second SIGTERM is handled as without the trainer

    after_step(monkeypatch, 2, terminate)
    config = tiny_config(tmp_path, max_train_steps=4, checkpointing_steps=2)
    with pytest.raises(TrainingStopped) as stopped:
        train_module.train(config)
    assert (stopped.value.step, stopped.value.reason) == (2, "SIGTERM")
    assert saves == [2], "checkpoint-2 was just saved: the stop must not save it again"
    assert signal.getsignal(signal.SIGTERM) == before
    assert read_run_state(config.output_path)["state"] == "stopped"


def test_cli_reports_the_stop_and_exits_0(tmp_path, monkeypatch, capsys):
    after_step(monkeypatch, 1, lambda run: (run.config.output_path / "STOP").touch())
    out = tmp_path / "out"
    (out).mkdir()
    (out / "STOP").touch()  # left from before the run: removed at the start, not obeyed
    argv = ["--pretrained_model_name_or_path", "builtin:tiny-sdxl", "--instance_dir", str(draw_subject(tmp_path / "figure")), "--resolution", "32", "--rank", "2", "--dash_warmup_steps", "1", "--max_train_steps", "3", "--output_dir", str(out)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "stopped after step 1; resume with --resume_from_checkpoint latest"
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-1"]


def test_failure_is_recorded_and_re_raised(tmp_path, monkeypatch):
    real_loss = step_module.diffusion_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 2 else loss

    monkeypatch.setattr(step_module, "diffusion_loss", poisoned)
    config = tiny_config(tmp_path)
    with pytest.raises(DashError) as error:
        train_module.train(config)
    state = read_run_state(config.output_path)
    assert (state["state"], state["step"], state["total_steps"], state["error"]) == ("failed", 1, 4, str(error.value))
    assert "\n" not in state["error"]


def test_terminated_trainer_process_stops_resumably(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "train_dreambooth_dash.py"), "--pretrained_model_name_or_path", "builtin:tiny-sdxl", "--instance_dir", str(draw_subject(tmp_path / "figure")), "--resolution", "32", "--rank", "2", "--dash_warmup_steps", "1", "--max_train_steps", "100000", "--output_dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while ((read_run_state(out) or {}).get("step") or 0) < 1:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    state = read_run_state(out)
    assert state["state"] == "stopped" and state["pid"] == process.pid
    assert stdout.strip() == f"stopped after step {state['step']}; resume with --resume_from_checkpoint latest"
    assert [p.name for p in checkpoint_dirs(out)] == [f"checkpoint-{state['step']}"]
