"""benchmarks/demo_recipes.py: each variant is the demo's training options with exactly its choices changed."""

from __future__ import annotations

from benchmark_loader import load_benchmark

from dash_diffusion import demo
from dash_diffusion.training.train_config import TrainConfig


def test_variants_change_only_their_choices(tmp_path):
    recipes = load_benchmark("demo_recipes")
    reference = demo.training_options(tmp_path, 400, recipes.WARMUP, demo.DEFAULT_MODEL, tmp_path / "class")
    assert any(name.endswith("(make demo)") and choices == {"conv": False, "masks": True, "prior": True} for name, choices in recipes.VARIANTS.items())
    for choices in recipes.VARIANTS.values():
        options = recipes.variant_options(tmp_path, tmp_path / "class", 400, **choices)
        TrainConfig(**options)  # every variant is a valid run (the LoCon targets pass the kohya check)
        assert ("instance_mask_dir" in options) == choices["masks"]
        assert bool(options.get("with_prior_preservation")) == choices["prior"]
        targets = options["target_modules"].split(",")
        assert targets[: len(reference["target_modules"].split(","))] == reference["target_modules"].split(",")
        assert ("conv1" in targets) == choices["conv"]
        unchanged = {key for key in reference if key not in {"target_modules", "instance_mask_dir"} and not key.startswith(("with_prior", "class_", "num_class", "prior_"))}
        assert {key: options[key] for key in unchanged} == {key: reference[key] for key in unchanged}


def test_colour_baseline_renders_the_class_with_the_subjects_colour_and_no_adapter(monkeypatch):
    recipes = load_benchmark("demo_recipes")
    prompts = []
    monkeypatch.setattr(demo, "render", lambda pipe, prompt, seeds: prompts.append(prompt) or ["picture"] * len(seeds))
    pictures = recipes.colour_baseline(("snow", "night"), (0, 1))
    assert pictures == ["picture"] * 4
    assert prompts == ["a photo of a teal robot in the snow", "a photo of a teal robot at night"]
