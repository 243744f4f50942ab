"""Run files: TOML written by every run, read by --config, flags override, one-line errors."""

from __future__ import annotations

import tomllib

import pytest
from train_helpers import assert_same_files, draw_subject, tiny_config

import dash_diffusion.training.train as train_module
from dash_diffusion import DashError
from dash_diffusion.training.cli import main, parse_config
from dash_diffusion.training.run_file import read_run_file, run_file_text, write_run_file
from dash_diffusion.training.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_written_and_read_back_config_is_equal(tmp_path):
    config = tiny_config(
        tmp_path,
        instance_prompt='a "sks" figure\\ with\ttabs,\nnewlines, \x7f and ünïcödé',
        validation_prompt="a photo of sks figure",
        learning_rate=3e-7,
        adam_epsilon=1e-8,
        lora_alpha=3.0,
        lora_dropout=0.1,
        snr_gamma=5.0,
        noise_offset=0.0357,
        use_8bit_adam=True,
        cache_latents=False,
        checkpoints_total_limit=2,
    )
    path = tmp_path / "run" / "run.toml"
    write_run_file(config, path)
    assert TrainConfig(**read_run_file(path)) == config
    text = path.read_text()
    assert text.startswith("#") and f"accelerate launch train_dreambooth_dash.py --config {path}" in text
    assert "# LoRA-Dash adapter\nrank = 2\n" in text and "# output and checkpoints\n" in text
    assert "resume_from_checkpoint" not in text and "class_dir" not in text  # None: left out
    assert [p.name for p in path.parent.iterdir()] == ["run.toml"]  # no temporary file left
    defaults = TrainConfig(instance_dir="photos")
    assert TrainConfig(**tomllib.loads(run_file_text(defaults, tmp_path / "r.toml"))) == defaults


def test_flags_given_override_the_file_and_defaults_do_not(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('instance_data_dir = "photos"\nrank = 3\nlearning_rate = 2e-3\nrandom_flip = true\ncache_latents = false\nlora_alpha = 6\n')
    config = parse_config(["--config", str(path), "--rank", "5"])
    assert (config.instance_dir, config.rank, config.learning_rate, config.random_flip, config.cache_latents) == ("photos", 5, 2e-3, True, False)
    assert config.lora_alpha == 6.0 and isinstance(config.lora_alpha, float)
    assert config.resolution == 1024  # neither in the file nor given: the default
    assert parse_config(["--config", str(path), "--cache_latents", "--instance_dir", "dog"]).cache_latents is True
    assert parse_config(["--instance_dir", "dog", "--config", str(path)]).instance_dir == "dog"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('instance_dir = "photos"\nrnak = 4\n', "run file {path}: unknown option 'rnak' (did you mean 'rank'? see --help for the options)"),
        ('instance_dir = "photos"\nwhatever = 1\n', "run file {path}: unknown option 'whatever' (see --help for the options)"),
        ('instance_dir = "photos"\nrank = "4"\n', "run file {path}: option 'rank' must be an integer, got the string '4'"),
        ('instance_dir = "photos"\nrank = 4.0\n', "option 'rank' must be an integer, got the float 4.0"),
        ('instance_dir = "photos"\nrandom_flip = 1\n', "option 'random_flip' must be a boolean (true or false)"),
        ("instance_dir = 7\n", "option 'instance_dir' must be a string, got the integer 7"),
        ('instance_dir = "photos"\nrank = \n', "run file {path} is not valid TOML (Invalid value (at line 2, column 8))"),
        ('instance_dir = "photos"\n[data]\nrank = 4\n', "unexpected table [data]"),
        ('instance_dir = "a"\ninstance_data_dir = "b"\n', "'instance_data_dir' and 'instance_dir' are the same option"),
        ('instance_dir = "photos"\ntrain_batch_size = 0\n', "--train_batch_size must be at least 1"),
    ],
    ids=["misspelt", "unknown", "string-for-int", "float-for-int", "int-for-bool", "int-for-str", "syntax", "table", "alias-twice", "range"],
)
def test_bad_run_file_is_one_line_and_exit_2(tmp_path, capsys, text, expected):
    path = tmp_path / "run.toml"
    path.write_text(text)
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected.format(path=path) in err, err


def test_missing_run_file_is_one_line(tmp_path):
    with pytest.raises(DashError, match=r"cannot read run file .*nope.toml \(No such file or directory\)"):
        parse_config(["--config", str(tmp_path / "nope.toml")])


def test_run_writes_run_toml_and_config_repeats_it_bit_identically(tmp_path, capsys):
    first = tmp_path / "first"
    argv = ["--pretrained_model_name_or_path", "builtin:tiny-sdxl", "--instance_dir", str(draw_subject(tmp_path / "figure")), "--resolution", "32", "--rank", "2", "--dash_directions", "3", "--dash_warmup_steps", "1", "--max_train_steps", "2", "--learning_rate", "1e-3", "--lora_dropout", "0.1", "--random_flip", "--output_dir", str(first)]
    assert main(argv) == 0
    run_file = first / "run.toml"
    assert TrainConfig(**read_run_file(run_file)) == parse_config(argv)
    again = tmp_path / "again"
    assert main(["--config", str(run_file), "--output_dir", str(again)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"adapter written to {again}"
    assert_same_files(first, again, atol=0)
    assert read_run_file(again / "run.toml") == {**read_run_file(run_file), "output_dir": str(again)}


def test_run_toml_is_written_before_the_first_step(tmp_path, monkeypatch):
    def no_step(*args, **kwargs):
        raise RuntimeError("no step in this test")

    monkeypatch.setattr(train_module, "optimizer_step", no_step)
    config = tiny_config(tmp_path)
    with pytest.raises(RuntimeError):
        train_module.train(config)
    assert TrainConfig(**read_run_file(config.output_path / "run.toml")) == config
