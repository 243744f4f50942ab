"""The mini SDXL's tokenizer and architecture, and its pretraining script (tiny step counts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dash_diffusion.models.mini.architecture import RESOLUTION, build_mini_sdxl_pipeline, build_tokenizer
from dash_diffusion.models.mini.pretrain import PretrainConfig, batch_sampler, main, parse_class_weights, pretrain
from dash_diffusion.models.mini.tokenizer import segment, single_token_words, word_merges
from dash_diffusion.models.world import caption, sample_scene, vocabulary
from tests.pretrain_helpers import small


def test_every_world_word_is_one_token():
    words = vocabulary()
    tokenizer = build_tokenizer(words)
    assert single_token_words(tokenizer, words) == words
    ranks = {pair: rank for rank, pair in enumerate(word_merges(words))}
    assert all(len(segment(word, ranks)) == 1 for word in words)
    import numpy as np

    text = caption(sample_scene(np.random.default_rng(0), "train"))
    assert len(tokenizer(text, add_special_tokens=False).input_ids) == len(text.split())


def test_architecture_is_sdxl_and_small():
    pipeline = build_mini_sdxl_pipeline(vocabulary())
    assert pipeline.unet.config.addition_embed_type == "text_time"
    assert pipeline.unet.config.cross_attention_dim == pipeline.text_encoder.config.hidden_size + pipeline.text_encoder_2.config.hidden_size
    assert 2 ** (len(pipeline.vae.config.block_out_channels) - 1) * pipeline.unet.config.sample_size == RESOLUTION
    parameters = sum(p.numel() for m in (pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2) for p in m.parameters())
    assert parameters * 2 <= 25e6, "float16 weights must fit the 25 MB budget"


def test_pretraining_resumes_to_the_same_model_and_loads_in_stock_diffusers(tmp_path):
    torch.set_num_threads(1)
    reference = pretrain(small(tmp_path / "a"))
    # the same run in two sittings: the first stops after 1 UNet step, the second resumes
    pretrain(small(tmp_path / "b", unet_steps=1))
    resumed = pretrain(small(tmp_path / "b"))
    for sub in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        left, right = load_file(str(reference / sub)), load_file(str(resumed / sub))
        assert all(torch.equal(left[k], right[k]) for k in left), sub
    record = json.loads((reference / "pretraining.json").read_text())
    assert record["stages"]["unet"]["steps"] == 3 and record["machine"]["cpus"] >= 1
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(reference))
    image = pipe("a photo of a red robot on the beach", num_inference_steps=2, height=RESOLUTION, width=RESOLUTION, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (RESOLUTION, RESOLUTION)


def test_a_killed_invocation_keeps_its_training_time_in_the_record(tmp_path, monkeypatch):
    # bug: pretraining.json added a stage's seconds only when the stage finished, so the time of an
    # invocation killed mid-stage (a continued long run) was lost from the record
    import dash_diffusion.models.mini.pretrain as module

    torch.set_num_threads(1)
    real_save = module.save_stage
    saved_seconds = []

    def save_then_die(path, step, models, optimizer, rng, extra=None):
        real_save(path, step, models, optimizer, rng, extra)
        if path.name.startswith("unet") and step == 2:
            saved_seconds.append(extra["seconds"])
            raise KeyboardInterrupt  # killed right after the step-2 checkpoint

    monkeypatch.setattr(module, "save_stage", save_then_die)
    try:
        pretrain(small(tmp_path))
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(module, "save_stage", real_save)
    out = pretrain(small(tmp_path))
    record = json.loads((out / "pretraining.json").read_text())
    assert saved_seconds and saved_seconds[0] > 0
    assert record["stages"]["unet"]["steps"] == 3 and record["stages"]["unet"]["seconds"] > saved_seconds[0]


def test_continued_vae_stage_uses_the_new_learning_rate(tmp_path):
    # bug: the saved optimizer state carried the old rate, so continuing with another --vae_lr kept it
    from pathlib import Path

    from dash_diffusion.models.mini.pretrain import train_vae

    torch.set_num_threads(1)
    vae = build_mini_sdxl_pipeline(vocabulary()).vae
    work = Path(tmp_path)
    train_vae(vae, small(tmp_path, vae_steps=1, vae_lr=1e-4), work)
    train_vae(vae, small(tmp_path, vae_steps=2, vae_lr=5e-4), work)
    state = torch.load(work / "vae.pt", weights_only=False)
    assert state["step"] == 2
    assert state["optimizer"]["param_groups"][0]["lr"] == 5e-4


def test_prompts_cover_the_grammar_with_and_without_colour_and_scene():
    from dash_diffusion.models.mini.pretrain import all_prompts
    from dash_diffusion.models.world import CLASSES, COLOURS, SCENES, class_prompt
    from dash_diffusion.models.world.vocab import parse_caption

    prompts = all_prompts()
    assert len(set(prompts)) == len(CLASSES) * (len(SCENES) + 1) * (len(COLOURS) + 1)
    assert class_prompt("robot") in prompts and class_prompt("robot", "beach") in prompts
    assert all(class_prompt(*parse_caption(text)) == text for text in prompts)


def test_record_keeps_every_invocation(tmp_path):
    torch.set_num_threads(1)
    pretrain(small(tmp_path, unet_steps=1))
    out = pretrain(small(tmp_path, unet_steps=2, unet_lr=1e-4))
    record = json.loads((out / "pretraining.json").read_text())
    assert [run["unet_steps"] for run in record["runs"]] == [1, 2]
    assert record["runs"][1]["unet_lr"] == 1e-4 and record["stages"]["unet"]["steps"] == 2


def test_snapshot_exports_an_unfinished_run_and_replaces_the_old_export(tmp_path):
    from dash_diffusion.models.mini.pretrain import main

    torch.set_num_threads(1)
    pretrain(small(tmp_path, unet_steps=1))
    out = tmp_path / "model"
    assert (out / "model_index.json").is_file()
    assert main(["--work_dir", str(tmp_path / "work"), "--out", str(out), "--vae_steps", "2", "--snapshot"]) == 0
    record = json.loads((out / "pretraining.json").read_text())
    assert record["snapshot"] == {"vae_step": 2, "unet_step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "work"], "no staging folder is left behind"
    assert main(["--work_dir", str(tmp_path / "empty"), "--out", str(tmp_path / "x"), "--snapshot"]) == 2


def test_init_from_continues_an_exported_model_or_takes_only_its_vae(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    torch.set_num_threads(1)
    first = pretrain(small(tmp_path / "a"))
    shipped = StableDiffusionXLPipeline.from_pretrained(str(first))
    whole = pretrain(small(tmp_path / "b", init_from=str(first), unet_steps=0))
    vae_only = pretrain(small(tmp_path / "c", init_from=str(first), init_parts="vae", unet_steps=0))
    with_vae, fresh = (StableDiffusionXLPipeline.from_pretrained(str(path)) for path in (whole, vae_only))
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # noqa: E731
    assert same(with_vae.unet, shipped.unet) and same(with_vae.text_encoder, shipped.text_encoder)
    assert same(fresh.vae, shipped.vae) and not same(fresh.unet, shipped.unet)
    assert fresh.vae.config.scaling_factor == shipped.vae.config.scaling_factor
    record = json.loads((vae_only / "pretraining.json").read_text())
    assert "vae" not in record["stages"] and record["init_from"]["pretraining"]["stages"]["unet"]["steps"] == 3


def test_init_parts_text_unet_trains_a_new_vae_under_the_exported_unet(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    from dash_diffusion.models.mini.pretrain import stage_tag

    torch.set_num_threads(1)
    first = pretrain(small(tmp_path / "a", vae_steps=1))
    config = small(tmp_path / "b", init_from=str(first), init_parts="text_unet", vae_steps=2, unet_steps=0)
    assert stage_tag(config) == "vae2"  # latents and UNet state belong to the new VAE, not to the folder's
    result = pretrain(config)
    shipped, continued = (StableDiffusionXLPipeline.from_pretrained(str(path)) for path in (first, result))
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # noqa: E731
    assert same(continued.unet, shipped.unet) and same(continued.text_encoder_2, shipped.text_encoder_2)
    assert not same(continued.vae, shipped.vae)
    record = json.loads((result / "pretraining.json").read_text())
    assert record["stages"]["vae"]["steps"] == 2 and record["scaling_factor"] == continued.vae.config.scaling_factor
    with pytest.raises(ValueError, match="--init_parts"):
        pretrain(small(tmp_path / "c", init_from=str(first), init_parts="unet"))


def test_unet_learning_rate_warms_up_then_follows_a_half_cosine():
    from dash_diffusion.models.mini.pretrain import unet_learning_rate

    config = PretrainConfig(unet_lr=1.0, warmup_steps=10, unet_steps=110, final_lr_fraction=0.1)
    assert unet_learning_rate(0, config) == 0.1 and unet_learning_rate(9, config) == 1.0
    assert abs(unet_learning_rate(60, config) - 0.55) < 1e-9 and abs(unet_learning_rate(110, config) - 0.1) < 1e-9
    assert unet_learning_rate(50, PretrainConfig(unet_lr=1.0, warmup_steps=10)) == 1.0  # fraction 1: constant


def test_vae_learning_rate_follows_its_own_schedule_and_defaults_to_a_constant():
    from dash_diffusion.models.mini.pretrain import vae_learning_rate

    config = PretrainConfig(vae_lr=2.0, vae_warmup_steps=4, vae_steps=104, vae_final_lr_fraction=0.5)
    assert vae_learning_rate(0, config) == 0.5 and vae_learning_rate(3, config) == 2.0
    assert abs(vae_learning_rate(54, config) - 1.5) < 1e-9 and abs(vae_learning_rate(104, config) - 1.0) < 1e-9
    assert {vae_learning_rate(k, PretrainConfig(vae_lr=3e-4)) for k in (0, 7, 10_000)} == {3e-4}  # runs made before the schedule


def test_rotate_hue_turns_colours_about_the_grey_axis():
    from dash_diffusion.models.mini.pretrain import rotate_hue

    primaries = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]).T.reshape(1, 3, 1, 3).repeat(2, 1, 1, 1)
    turned = rotate_hue(primaries, torch.tensor([0.0, 2 * np.pi / 3]))
    assert torch.equal(turned[0], primaries[0])  # angle 0: the crop is left exactly as rendered
    assert torch.allclose(turned[1], primaries[1].roll(-1, dims=-1), atol=1e-6)  # a third of a turn: red -> green, green -> blue, blue -> red
    grey = torch.full((1, 3, 2, 2), 0.25)
    assert torch.allclose(rotate_hue(grey, torch.tensor([1.3])), grey, atol=1e-6)
    assert rotate_hue(torch.tensor([1.0, 1.0, -1.0]).reshape(1, 3, 1, 1), torch.tensor([0.5])).abs().max() <= 1.0  # clipped to [-1, 1]


def test_edge_loss_charges_blur_and_not_a_uniform_shift():
    from dash_diffusion.models.mini.pretrain import edge_loss

    pixels = torch.zeros(1, 3, 8, 8)
    pixels[..., :, 4:] = 1.0  # one vertical edge
    assert edge_loss(pixels + 0.3, pixels).item() < 1e-7  # a flat colour shift changes no difference
    blurred = pixels.clone()
    blurred[..., :, 3:5] = 0.5  # the step spread over two pixels: error 0, 0, 0, +0.5, -0.5, 0, 0, 0 in each row
    # across, the error's neighbour differences are +0.5, -1, +0.5 among 7 per row (mean 2/7); down, all 0
    assert abs(edge_loss(blurred, pixels).item() - 2.0 / 7) < 1e-6


def test_class_weights_draw_batches_in_proportion_and_default_to_the_old_uniform_draws(tmp_path):
    assert parse_class_weights("robot=3, cup=0.5") == {"robot": 3.0, "cup": 0.5} and parse_class_weights("") == {}
    for bad in ("robt=3", "robot=0", "robot=x", "robot", "robot=nan"):
        with pytest.raises(ValueError, match="--class_weights entry"):
            parse_class_weights(bad)
    work = tmp_path / "never-created"
    assert main(["--class_weights", "robot=-1", "--work_dir", str(work)]) == 2 and not work.exists()  # fails before any work

    classes = ["robot"] * 100 + ["ball"] * 800 + ["cup"] * 100
    uniform = batch_sampler(classes, PretrainConfig(unet_batch=64), np.random.default_rng(7))
    assert np.array_equal(uniform(), np.random.default_rng(7).integers(0, len(classes), size=64))  # old runs reproduce
    weighted = batch_sampler(classes, PretrainConfig(unet_batch=4000, class_weights="robot=3"), np.random.default_rng(7))
    share = np.mean(np.array(classes)[weighted()] == "robot")
    assert abs(share - 300 / 1200) < 0.03  # robot images weigh 3, the other 900 weigh 1
