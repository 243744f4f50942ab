"""The world judges: accurate on fresh renders (clean and blurred), an instance embedding that picks
out the demo subject of ``samples/robot``, deterministic training, and one-line errors for bad files.

The renders use generator seeds of their own (the training run draws from ``default_rng(0)``), so
every picture here is new to the judges.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from dash_diffusion.errors import DashError
from dash_diffusion.eval.world_bench.calibration import calibrate
from dash_diffusion.formats.safetensors_io import read_header
from dash_diffusion.models.world import COLOURS, SCENES, SUBJECTS, render, sample_scene, subject_scene
from dash_diffusion.models.world_judges import DEFAULT_WEIGHTS, instance_similarity, load_judges
from dash_diffusion.models.world_judges.examples import IGNORE
from dash_diffusion.models.world_judges.labels import LABELS
from dash_diffusion.models.world_judges.pool import PairPool
from dash_diffusion.models.world_judges.preprocess import square
from dash_diffusion.models.world_judges.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "robot"
FIELDS = ("object", "scene", "colour")
LOOK_ALIKE_GAP = 0.1


@pytest.fixture(scope="module")
def judges():
    return load_judges()


@pytest.fixture(scope="module")
def renders():
    """200 held-out and 100 training-split scenes from seeds the training never used, rendered."""
    rng = np.random.default_rng(20_250_417)
    scenes = [sample_scene(rng, "heldout") for _ in range(200)] + [sample_scene(rng, "train") for _ in range(100)]
    return scenes, [render(scene, 128) for scene in scenes]


@pytest.fixture(scope="module")
def references():
    return [Image.open(path) for path in sorted(SAMPLES.glob("*.png"))]


def _accuracy(judges, scenes, images) -> dict[str, float]:
    answers = judges.classify(images)
    assert len(answers) == len(scenes) and all(set(answer) == set(FIELDS) for answer in answers)
    return {field: float(np.mean([answer[field] == getattr(scene, field) for answer, scene in zip(answers, scenes)])) for field in FIELDS}


def test_classify_fresh_renders(judges, renders):
    accuracy = _accuracy(judges, *renders)
    assert accuracy["object"] >= 0.95 and accuracy["scene"] >= 0.95 and accuracy["colour"] >= 0.90, accuracy


def test_classify_blurred_renders(judges, renders):
    scenes, images = renders
    blurred = [image.filter(ImageFilter.GaussianBlur(1.5)) for image in images]
    accuracy = _accuracy(judges, scenes, blurred)
    assert min(accuracy.values()) >= 0.85, accuracy


def test_any_size_and_aspect_is_square_cropped(judges, renders):
    _, images = renders
    assert np.array_equal(np.asarray(square(images[0])), np.asarray(images[0]))  # 128 px passes unchanged
    wide = Image.new("RGB", (384, 256), (255, 0, 0))
    wide.paste((0, 0, 255), (48, 0, 336, 256))  # only the middle 256 of the 384 px survive the crop
    cropped = np.asarray(square(wide))
    assert cropped.shape == (128, 128, 3) and cropped[:, :, 0].max() < 30 and cropped[:, :, 2].min() > 225
    tall = images[0].resize((256, 384))
    assert square(tall).size == (128, 128)
    assert judges.classify([images[0].resize((256, 256), Image.Resampling.BICUBIC)])[0] == judges.classify([images[0]])[0]


def test_scene_head_and_embedding_use_separate_branches(judges):
    model = judges.model
    out = model(torch.zeros(2, 3, 128, 128))
    scene_only = torch.autograd.grad(out["scene"].sum(), list(model.identity_branch.parameters()) + list(model.project.parameters()), allow_unused=True)
    assert all(grad is None for grad in scene_only)
    embedding_only = torch.autograd.grad(out["embedding"].sum(), list(model.scene_branch.parameters()), allow_unused=True)
    assert all(grad is None for grad in embedding_only)


def test_embeddings_are_unit_and_deterministic(judges, renders, references):
    _, images = renders
    first = judges.embed(images[:5] + references[:2])
    again = judges.embed(images[:5] + references[:2])
    assert first.shape == (7, 64) and first.dtype == torch.float32
    assert torch.allclose(first.norm(dim=1), torch.ones(7), atol=1e-5)
    assert torch.equal(first, again)


def _robots(rng, **change) -> list[Image.Image]:
    return [render(replace(subject_scene(scene, rng), **change), 128) for scene in SCENES]


def test_instance_similarity_picks_out_the_subject(judges, references):
    rng = np.random.default_rng(31_337)
    subject = _robots(rng) + _robots(rng)
    others = [image for colour in ("red", "blue", "pink", "orange") for image in _robots(rng, colour=colour)]
    others += [image for emblem in ("heart", "bolt", "circle", "square") for image in _robots(rng, emblem=emblem)]
    classes = []
    while len(classes) < 48:
        scene = sample_scene(rng, "train")
        if scene.object != "robot":
            classes.append(render(scene, 128))
    to_subject = instance_similarity(judges, subject, references)
    to_others = instance_similarity(judges, others, references)
    to_classes = instance_similarity(judges, classes, references)
    assert to_subject - to_others > 0.2, (to_subject, to_others)
    assert to_subject - to_classes > 0.3, (to_subject, to_classes)
    # subject against subject beats subject against a teal robot that only has another emblem
    teal_other_emblem = [image for emblem in ("heart", "bolt", "circle", "square") for image in _robots(rng, emblem=emblem)]
    assert instance_similarity(judges, subject, subject) > instance_similarity(judges, subject, teal_other_emblem) + 0.1


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_subject_fidelity_tells_each_subject_from_its_look_alikes(judges, name):
    # Regression: the first judges scored green cars of the other two shapes *above* the green van
    # itself (0.854 against 0.840) and the other subjects only 0.04-0.07 above their look-alikes, so
    # the mini-DreamBench's subject fidelity could not tell the instance from its class and colour.
    # The variant head and the look-alike couples in every training batch fixed it.
    scores = calibrate(judges, name)
    assert scores["subject"] - scores["look-alike"] >= LOOK_ALIKE_GAP, scores
    assert scores["subject"] - scores["other colour"] >= 0.2, scores


def test_look_alike_couples_share_class_and_colour_but_not_the_instance():
    pool = PairPool(300, np.random.default_rng(5), image_size=32)
    rng = np.random.default_rng(6)
    plain = pool.choose_slots(16, rng)
    assert len(plain) == len(set(plain)) == 16
    slots = pool.choose_slots(16, rng, look_alike_share=0.5)
    assert len(slots) == len(set(slots)) == 16
    keys = [pool.keys[2 * slot] for slot in slots]
    couples = 0
    for key in keys[:4]:  # the anchors; each gets a look-alike in the batch wherever the pool has one
        pool_has_one = any(other[:2] == key[:2] and other != key for other in pool.keys)
        batch_has_one = any(other[:2] == key[:2] and other != key for other in keys)
        assert batch_has_one or not pool_has_one, key
        couples += batch_has_one
    assert couples >= 3
    images, labels, instances = pool.sample(16, np.random.default_rng(6), look_alike_share=0.5)
    assert images.shape == (32, 3, 32, 32) and len(set(instances.tolist())) >= 8
    robots = labels["object"] == LABELS["object"].index("robot")
    assert (labels["variant"][robots] == IGNORE).all()  # a robot's shape is its parts, not a variant


def test_shipped_weights_file(judges):
    shapes, metadata = read_header(DEFAULT_WEIGHTS)
    assert DEFAULT_WEIGHTS.stat().st_size < 2_000_000
    assert metadata["format"] == "dash-diffusion-world-judges-v1" and int(metadata["steps"]) > 0 and float(metadata["seconds"]) > 0
    assert judges.labels == LABELS and set(LABELS["colour"]) == set(COLOURS)


def test_training_is_deterministic():
    options = dict(steps=2, batch=4, seed=3, pool_size=3, refresh=1, log_every=0)
    first, meta = train(**options)
    second, _ = train(**options)
    left, right = first.state_dict(), second.state_dict()
    assert all(torch.equal(left[key], right[key]) for key in left)
    assert meta["seed"] == "3" and meta["steps"] == "2"


def test_missing_or_bad_weights_give_one_line_errors(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(DashError) as error:
        load_judges(missing)
    message = str(error.value)
    assert str(missing) in message and "world_judges.train" in message and "\n" not in message
    garbage = tmp_path / "bad.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(DashError, match="bad.safetensors") as error:
        load_judges(garbage)
    assert "\n" not in str(error.value)
