"""The procedural world: deterministic renders, splits without the subject or held-out combinations,
and a caption grammar whose words the vocabulary lists."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from dash_diffusion.models.world import (
    ARM_POSES,
    BODY_SHAPES,
    CLASSES,
    COLOURS,
    EMBLEMS,
    HEAD_SHAPES,
    HELDOUT,
    SCENES,
    Scene,
    caption,
    class_prompt,
    class_scenes,
    instance_prompt,
    is_subject,
    render,
    render_class_images,
    render_dataset,
    sample_scene,
    subject_scene,
    vocabulary,
)


def _scenes(count: int, split: str, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, split) for _ in range(count)]


@pytest.fixture(scope="module")
def train_scenes() -> list[Scene]:
    return _scenes(2000, "train")


def test_the_world_has_enough_classes_colours_and_scenes() -> None:
    assert len(CLASSES) >= 6 and "robot" in CLASSES
    assert len(COLOURS) >= 6 and "teal" in COLOURS
    assert {"beach", "room", "grass", "snow", "night"} <= set(SCENES)
    assert len(set(COLOURS.values())) == len(COLOURS)


def test_same_seed_same_pixels_and_other_seed_other_pixels() -> None:
    first = render_dataset(6, seed=3, split="train", size=64)
    second = render_dataset(6, seed=3, split="train", size=64)
    assert [scene for _, scene in first] == [scene for _, scene in second]
    assert all(a.tobytes() == b.tobytes() for (a, _), (b, _) in zip(first, second))
    other = render_dataset(6, seed=4, split="train", size=64)
    assert [scene for _, scene in other] != [scene for _, scene in first]
    scene = first[0][1]
    assert render(scene, 64).tobytes() == render(scene, 64).tobytes()


@pytest.mark.parametrize("size", [64, 128])
def test_render_is_a_square_rgb_image(size: int) -> None:
    image = render(sample_scene(np.random.default_rng(size)), size)
    assert image.mode == "RGB" and image.size == (size, size)
    assert len(set(image.getdata())) > 50  # a real picture, not a flat fill


def test_every_class_variant_and_scene_renders() -> None:
    rng = np.random.default_rng(1)
    base = sample_scene(rng)
    for obj, scene, variant in itertools.product(CLASSES, SCENES, range(3)):
        turn = -0.8 if variant == 1 else 0.6
        image = render(replace(base, object=obj, scene=scene, variant=variant, turn=turn), 32)
        assert image.size == (32, 32)


def test_every_robot_part_renders() -> None:
    base = subject_scene("room", np.random.default_rng(2))
    for body, head, emblem, arms in itertools.product(BODY_SHAPES, HEAD_SHAPES, EMBLEMS, ARM_POSES):
        scene = replace(base, colour="red", body=body, head=head, emblem=emblem, arms=arms, antenna=arms != "up")
        assert render(scene, 32).size == (32, 32)


def test_object_and_scene_change_the_picture() -> None:
    scene = subject_scene("grass", np.random.default_rng(0))
    pixels = np.asarray(render(scene, 64), dtype=np.int16)
    for changed in (replace(scene, colour="red"), replace(scene, scene="night"), replace(scene, object="duck")):
        assert np.abs(np.asarray(render(changed, 64), dtype=np.int16) - pixels).mean() > 1.0


def test_train_split_covers_every_class_colour_scene_and_part(train_scenes: list[Scene]) -> None:
    assert {s.object for s in train_scenes} == set(CLASSES)
    assert {s.colour for s in train_scenes} == set(COLOURS)
    assert {s.scene for s in train_scenes} == set(SCENES)
    robots = [s for s in train_scenes if s.object == "robot"]
    assert {s.body for s in robots} == set(BODY_SHAPES)
    assert {s.emblem for s in robots} == set(EMBLEMS)
    assert {s.arms for s in robots} == set(ARM_POSES)
    assert any(s.colour == "teal" for s in robots) and any(s.emblem == "star" for s in robots)


def test_train_split_never_shows_the_subject_nor_a_heldout_combination(train_scenes: list[Scene]) -> None:
    for scene in train_scenes:
        assert not (scene.object == "robot" and scene.colour == "teal" and scene.emblem == "star")
        assert not is_subject(scene)
        assert (scene.object, scene.colour, scene.scene) not in HELDOUT


def test_train_split_never_draws_a_held_out_subject_instance(train_scenes: list[Scene]) -> None:
    # the mini-DreamBench's subjects must be new to the pretrained model, as DreamBooth's are
    from dash_diffusion.models.world import SUBJECTS, held_out_instance

    assert len(SUBJECTS) >= 7 and len({s.object for s in SUBJECTS.values()}) == len(SUBJECTS)
    assert not any(held_out_instance(scene) for scene in train_scenes)
    rng = np.random.default_rng(3)
    for subject in SUBJECTS.values():
        placement = {"size": 0.6, "x": 0.5, "turn": float(rng.uniform(-1, 1))}
        drawn = subject.scene("beach", placement)
        assert subject.matches(drawn) and held_out_instance(drawn) == subject
        # the class, its colour and every shape variant still appear in training, only not together
        same = [s for s in train_scenes if (s.object, s.colour) == (subject.object, subject.colour)]
        assert same and (subject.parts or {s.variant for s in train_scenes if s.object == subject.object} == set(range(3)))


def test_class_images_are_other_instances_of_the_class_in_many_scenes() -> None:
    from dash_diffusion.models.world import held_out_instance

    # the demo's prior-preservation pictures: robots of the training split, never the subject being taught
    scenes = class_scenes("robot", 48, seed=0)
    assert len(scenes) == 48 and all(s.object == "robot" and not held_out_instance(s) and not is_subject(s) for s in scenes)
    assert len({s.scene for s in scenes}) == len(SCENES) and len({s.colour for s in scenes}) >= 6
    images = render_class_images("robot", 3, seed=0, size=64)
    assert [np.asarray(i).tobytes() for i in images] == [np.asarray(render(s, 64)).tobytes() for s in scenes[:3]]
    with pytest.raises(ValueError, match="unknown object class"):
        class_scenes("dragon", 1)


def test_heldout_split_only_shows_heldout_combinations() -> None:
    scenes = _scenes(500, "heldout", seed=9)
    assert all((s.object, s.colour, s.scene) in HELDOUT for s in scenes)
    assert not any(is_subject(s) for s in scenes)
    assert len({(s.object, s.colour, s.scene) for s in scenes}) > 80
    with pytest.raises(ValueError):
        sample_scene(np.random.default_rng(0), "test")


def test_heldout_is_a_spread_out_minority(train_scenes: list[Scene]) -> None:
    total = len(CLASSES) * len(COLOURS) * len(SCENES)
    assert 100 <= len(HELDOUT) <= 0.155 * total
    assert all(o in CLASSES and c in COLOURS and s in SCENES for o, c, s in HELDOUT)
    assert {o for o, _, _ in HELDOUT} == set(CLASSES)
    assert {c for _, c, _ in HELDOUT} == set(COLOURS)
    assert {s for _, _, s in HELDOUT} == set(SCENES)
    seen = {(s.object, s.colour) for s in train_scenes} | {(s.object, s.scene) for s in train_scenes}
    for obj, colour, scene in HELDOUT:  # each part of a held-out combination is trained in other ones
        assert (obj, colour) in seen and (obj, scene) in seen


def test_subject_scene_is_the_demo_robot() -> None:
    rng = np.random.default_rng(0)
    for name in SCENES:
        scene = subject_scene(name, rng)
        assert is_subject(scene) and scene.scene == name
        assert (scene.body, scene.head, scene.emblem_colour, scene.antenna, scene.antenna_tip) == (
            "round", "boxy", "yellow", True, "orange"
        )
    assert render(scene, 64).size == (64, 64)


def test_captions_follow_the_grammar() -> None:
    assert caption(Scene("ball", "red", "beach")) == "a photo of a red ball on the beach"
    assert caption(Scene("robot", "blue", "room")) == "a photo of a blue robot in a room"
    assert caption(Scene("car", "green", "snow")) == "a photo of a green car in the snow"
    assert caption(Scene("duck", "yellow", "night")) == "a photo of a yellow duck at night"
    assert caption(Scene("tree", "orange", "grass")) == "a photo of an orange tree on the grass"
    assert class_prompt("robot") == "a photo of a robot"
    assert class_prompt("robot", "beach") == "a photo of a robot on the beach"
    assert class_prompt("robot", colour="red") == "a photo of a red robot"
    assert instance_prompt("robot", "snow") == "a photo of sks robot in the snow"
    with pytest.raises(ValueError):
        class_prompt("robot", colour="mauve")


def test_parse_caption_inverts_class_prompt() -> None:
    from dash_diffusion.models.world.vocab import parse_caption

    assert parse_caption("a photo of an orange tree on the grass") == ("tree", "grass", "orange")
    assert parse_caption("a photo of a robot") == ("robot", None, None)
    assert parse_caption("a photo of a duck under the sea") == ("duck", "underwater", None)
    for text in ("a photo of sks robot", "a photo of a blue robot on the moon", "a red ball", "a photo of a blue"):
        with pytest.raises(ValueError, match="grammar"):
            parse_caption(text)


def test_vocabulary_covers_every_caption() -> None:
    words = vocabulary()
    assert words == sorted(set(words)) and "sks" in words
    texts = [caption(s) for s in _scenes(500, "train", seed=5)]
    texts += [caption(s) for s in _scenes(100, "heldout", seed=6)]
    texts += [class_prompt(o) for o in CLASSES] + [instance_prompt("robot", s) for s in SCENES]
    assert {word for text in texts for word in text.split()} <= set(words)


def test_scene_rejects_unknown_values() -> None:
    with pytest.raises(ValueError):
        Scene("robot", "mauve", "beach")
    with pytest.raises(ValueError):
        Scene("robot", "teal", "moon")
    with pytest.raises(ValueError):
        Scene("robot", "teal", "beach", emblem="moon")
