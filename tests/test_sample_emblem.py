"""The sample photos are drawn so that builtin:mini-sdxl's VAE keeps their star, and the committed PNGs are
what ``samples/draw_samples.py`` draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image

from dash_diffusion.models.mini import MINI_WEIGHTS
from tests.benchmark_loader import load_benchmark

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_the_vae_keeps_the_sample_robots_star():
    # Bug: the photos were drawn with 5-8 px lines (on the 800 px canvas) and a star edged in dark yellow,
    # thinner than the world's pen ever draws. Through the mini VAE the star came back as a yellow blob that
    # decoded like a round emblem, so no adapter could show it. Measured (benchmarks/sample_emblem.py): the
    # encoding kept 0.26 of the star-vs-disc difference with those lines, 0.45 with the world's stroke.
    torch.set_num_threads(1)
    bench = load_benchmark("sample_emblem")
    vae = AutoencoderKL.from_pretrained(str(MINI_WEIGHTS), subfolder="vae").float().eval()
    shares = bench.emblem_shares(vae, *bench.photo_pairs(bench.load_drawing(SAMPLES / "draw_samples.py")))
    assert shares["encoded"] > 0.38, shares
    assert shares["decoded"] > 0.7, shares


def test_the_committed_photos_and_masks_are_what_the_script_draws():
    drawing = load_benchmark("sample_emblem").load_drawing(SAMPLES / "draw_samples.py")
    for shot in drawing.SHOTS:
        image, mask = drawing.render_with_mask(shot)
        for folder, drawn in (("robot", image.convert("RGB")), ("robot_masks", mask)):
            committed = Image.open(SAMPLES / folder / shot.name)
            assert np.array_equal(np.asarray(committed.convert(drawn.mode)), np.asarray(drawn)), f"{folder}/{shot.name}"
