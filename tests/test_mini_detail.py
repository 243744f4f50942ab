"""benchmarks/mini_detail.py: the pictures it re-draws and how it scores them against their originals."""

from __future__ import annotations

from benchmark_loader import load_benchmark
from PIL import Image

from dash_diffusion.models.world import CLASSES
from dash_diffusion.models.world_judges import load_judges


def test_every_class_and_the_sample_photos_are_scored_with_their_own_prompts():
    detail = load_benchmark("mini_detail")
    rows = detail.subjects(count=2, seed=3)
    assert list(rows) == [*CLASSES, "samples/robot photos"]
    for name in CLASSES:
        pictures, prompts = rows[name]
        assert len(pictures) == len(prompts) == 2 and all(f" {name}" in prompt for prompt in prompts)
    photos, prompts = rows["samples/robot photos"]
    assert len(photos) == 6 and set(prompts) == {"a photo of a teal robot"}


def test_a_picture_scores_one_against_itself_and_less_against_another():
    detail = load_benchmark("mini_detail")
    judges = load_judges()
    pictures, _ = detail.subjects(count=2, seed=3)["robot"]
    same_cosine, same_error = detail.paired_scores(judges, pictures, pictures)
    assert abs(same_cosine - 1.0) < 1e-5 and same_error == 0.0
    grey = [Image.new("RGB", (128, 128), (128, 128, 128))] * 2
    other_cosine, other_error = detail.paired_scores(judges, grey, pictures)
    assert other_cosine < 0.9 and other_error > 0.05
