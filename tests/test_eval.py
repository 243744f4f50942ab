"""DreamBooth evaluation harness: prompts, metrics on known vectors, preprocessing, embedders, end to end."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from dash_helpers import perturb_adapter
from PIL import Image

from dash_diffusion import DashConfig, DashError, inject_dash, save_adapter
from dash_diffusion.eval import prompts as P
from dash_diffusion.eval.config import EvalConfig
from dash_diffusion.eval.features import load_clip, load_dino
from dash_diffusion.eval.generation import image_seed, load_pipeline, plan_jobs
from dash_diffusion.eval.metrics import cosine_matrix, image_similarity, paired_difference, summarise, text_similarity
from dash_diffusion.eval.preprocess import IMAGENET_MEAN, IMAGENET_STD, center_crop, clip_transform, dino_transform, resize_shorter_side
from dash_diffusion.eval.runner import run
from dash_diffusion.eval.tiny_features import save_tiny_clip, save_tiny_dino
from dash_diffusion.models.builtin import resolve_model_path
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline


def dreambooth_photos() -> Path:
    """The real DreamBooth photos live beside the checkout, never in it: ``DASH_DREAMBOOTH_DIR``, else
    ``../shared/dreambooth`` beside this checkout, else beside the local repository it was cloned from."""
    if "DASH_DREAMBOOTH_DIR" in os.environ:
        return Path(os.environ["DASH_DREAMBOOTH_DIR"])
    root = Path(__file__).resolve().parents[1]
    candidates = [root.parent / "shared" / "dreambooth"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        origin = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        if origin and "://" not in origin and ":" not in origin.split("/")[0]:  # a local path, not a URL
            candidates.append(Path(origin).resolve().parent / "shared" / "dreambooth")
    return next((path for path in candidates if path.is_dir()), candidates[0])


SHARED = dreambooth_photos()
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"the DreamBooth photos ({SHARED}) are not available; set DASH_DREAMBOOTH_DIR")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- prompts


def test_prompt_lists_follow_the_protocol():
    assert len(P.OBJECT_PROMPTS) == len(P.LIVE_PROMPTS) == 25
    assert P.OBJECT_PROMPTS[:10] == P.LIVE_PROMPTS[:10] and P.OBJECT_PROMPTS[20:] == P.LIVE_PROMPTS[20:]
    assert len(set(P.OBJECT_PROMPTS)) == len(set(P.LIVE_PROMPTS)) == 25
    assert all("{0} {1}" in t for t in P.OBJECT_PROMPTS + P.LIVE_PROMPTS)
    assert P.format_prompt(P.LIVE_PROMPTS[10], "sks", "dog") == "a sks dog wearing a red hat"
    assert P.format_prompt(P.OBJECT_PROMPTS[24], "xyz", "stuffed animal") == "a cube shaped xyz stuffed animal"
    assert P.clip_t_text(P.OBJECT_PROMPTS[20], "sks", "bowl") == "a red bowl"
    assert P.clip_t_text(P.OBJECT_PROMPTS[0], "sks", "bowl", "full") == "a sks bowl in the jungle"
    assert P.prompt_templates("live") is P.LIVE_PROMPTS
    with pytest.raises(DashError, match="object, live"):
        P.prompt_templates("animal")


def test_classes_kinds_and_prompt_selection():
    assert P.infer_class("/data/berry_bowl") == "bowl" and P.infer_class("dog6") == "dog" and P.infer_class("my_robot_2") == "my robot"
    assert P.default_kind("dog") == P.default_kind("Cat") == "live"
    assert P.default_kind("stuffed animal") == P.default_kind("backpack") == "object"
    assert sum(P.default_kind(c) == "live" for c in P.SUBJECT_CLASSES.values()) == 9  # the dataset's live subjects
    assert P.select_prompts(P.OBJECT_PROMPTS, "all") == list(range(25))
    assert P.select_prompts(P.OBJECT_PROMPTS, "3") == [0, 1, 2]
    for bad in ("0", "26", "some"):
        with pytest.raises(DashError, match="--prompts"):
            P.select_prompts(P.OBJECT_PROMPTS, bad)


@needs_shared
def test_prompts_and_classes_match_the_dataset_file():
    text = (SHARED / "prompts_and_classes.txt").read_text(encoding="utf-8")
    lists = re.findall(r"prompt_list = \[(.*?)\]", text, flags=re.S)
    parsed = [tuple(re.findall(r"'(.*?)'\.format", block)) for block in lists]
    assert parsed == [P.OBJECT_PROMPTS, P.LIVE_PROMPTS]
    table = dict(line.split(",", 1) for line in text.split("Prompts")[0].splitlines() if "," in line and not line.startswith("subject_name"))
    assert table == P.SUBJECT_CLASSES


# ---------------------------------------------------------------- metrics


def test_metrics_on_known_vectors():
    a = [[1.0, 0.0], [0.0, 2.0]]
    b = [[1.0, 1.0], [3.0, 0.0]]
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(cosine_matrix(a, b), [[r, 1.0], [r, 0.0]], atol=1e-12)
    np.testing.assert_allclose(image_similarity(np.array(a), np.array(b)), [(r + 1) / 2, r / 2], atol=1e-12)
    np.testing.assert_allclose(text_similarity(np.array(a), np.array([[2.0, 0.0], [-1.0, 0.0]])), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(text_similarity(np.array([[3.0, 4.0]]), np.array([[4.0, 3.0]])), [24 / 25], atol=1e-12)
    stat = summarise([1.0, 2.0, 3.0, 4.0])
    assert stat.mean == 2.5 and stat.n == 4 and stat.std == pytest.approx(math.sqrt(5 / 3), abs=1e-12)
    single = summarise([0.7])
    assert single.mean == 0.7 and single.n == 1 and math.isnan(single.std)
    diff = paired_difference([0.5, 0.7, 0.9], [0.4, 0.7, 0.6])
    assert diff.mean == pytest.approx(0.4 / 3) and diff.std == pytest.approx(np.std([0.1, 0.0, 0.3], ddof=1))
    with pytest.raises(ValueError):
        text_similarity(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])


def test_seeds_depend_only_on_prompt_and_image():
    assert image_seed(7, 3, 2) == 3009
    few = plan_jobs(P.LIVE_PROMPTS, [0, 1], 2, "sks", "dog", seed=5)
    many = plan_jobs(P.LIVE_PROMPTS, list(range(4)), 3, "sks", "dog", seed=5)
    seeds = {(j.prompt_index, j.image_index): j.seed for j in many}
    assert all(seeds[(j.prompt_index, j.image_index)] == j.seed for j in few)
    assert [j.seed for j in few] == [5, 6, 1005, 1006]
    assert few[2].prompt == "a sks dog in the snow" and few[2].clip_text == "a dog in the snow"


# ---------------------------------------------------------------- preprocessing


def test_resize_and_crop_follow_torchvision_rules():
    image = Image.new("RGB", (300, 200))
    assert resize_shorter_side(image, 256).size == (384, 256)
    assert resize_shorter_side(Image.new("RGB", (201, 333)), 224).size == (224, int(224 * 333 / 201))
    crop = center_crop(Image.fromarray(np.arange(10 * 7 * 3, dtype=np.uint8).reshape(10, 7, 3)), 4)
    np.testing.assert_array_equal(np.asarray(crop), np.arange(10 * 7 * 3, dtype=np.uint8).reshape(10, 7, 3)[3:7, 2:6])
    transform = dino_transform(224)
    assert (transform.resize, transform.crop) == (256, 224)
    colour = (200, 100, 50)
    expected = np.array([(c / 255 - m) / s for c, m, s in zip(colour, IMAGENET_MEAN, IMAGENET_STD)])[:, None]
    exact = transform([Image.new("RGB", (256, 300), colour)])  # already 256 on the short side: crop only
    assert exact.shape == (1, 3, 224, 224) and exact.dtype == np.float32
    np.testing.assert_allclose(exact[0].reshape(3, -1), np.broadcast_to(expected, (3, 224 * 224)), atol=1e-6)
    resized = transform([Image.new("RGB", (500, 375), colour)])  # bicubic in 8-bit fixed point: within 1 level
    np.testing.assert_allclose(resized[0].reshape(3, -1), np.broadcast_to(expected, (3, 224 * 224)), atol=1.01 / 255 / min(IMAGENET_STD))


def test_loading_the_base_raises_no_torch_dtype_warning():
    # diffusers 0.40 deprecated from_pretrained(torch_dtype=...) for dtype= with a FutureWarning
    vae = str(Path(resolve_model_path("builtin:tiny-sdxl")) / "vae")  # also covers the --vae load
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # pyproject ignores FutureWarning; see every one here
        pipe = load_pipeline("builtin:tiny-sdxl", "cpu", torch.float32, vae=vae)
    assert not [str(w.message) for w in caught if "torch_dtype" in str(w.message)]
    assert pipe.unet.dtype == torch.float32


@pytest.fixture(scope="module")
def feature_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature-models")
    return save_tiny_dino(root / "dino"), save_tiny_clip(root / "clip")


def test_clip_transform_matches_the_transformers_processor(feature_models):
    from transformers import CLIPImageProcessor

    _, clip_dir = feature_models
    transform = clip_transform(32, clip_dir)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    reference = CLIPImageProcessor.from_pretrained(clip_dir)(images=image, return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(transform([image]), reference, atol=1e-5)


# ---------------------------------------------------------------- embedders


def test_embedders_load_by_path_and_give_unit_vectors(feature_models):
    dino_dir, clip_dir = feature_models
    dino, clip = load_dino(str(dino_dir)), load_clip(str(clip_dir))
    images = [Image.new("RGB", (80, 60), (255, 0, 0)), Image.new("RGB", (60, 80), (0, 0, 255))]
    d = dino.embed_images(images)
    assert d.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    with torch.no_grad():
        cls = dino.model(pixel_values=torch.from_numpy(dino.transform(images))).last_hidden_state[:, 0].double().numpy()
    np.testing.assert_allclose(d, cls / np.linalg.norm(cls, axis=1, keepdims=True), atol=1e-6)
    ci, ct = clip.embed_images(images), clip.embed_texts(["a dog in the snow", "a red bowl"])
    assert ci.shape == ct.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(ct, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(clip.embed_texts(["a red bowl"])[0], ct[1], atol=1e-6)  # padding is masked out
    assert dino.info.model_class == "ViTModel" and clip.info.transform["crop"] == 32


def test_feature_model_errors_name_the_option(tmp_path, feature_models):
    with pytest.raises(DashError, match="--dino_model folder .* does not exist"):
        load_dino(str(tmp_path / "nowhere" / "dino"))
    with pytest.raises(DashError, match=r"without hub access .* --clip_model models/missing-clip"):
        load_clip("dash-diffusion-tests/missing-clip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DashError, match="is not a transformers DINO model"):
        load_dino(str(tmp_path / "empty"))
    with pytest.raises(DashError, match="is a CLIP model"):
        load_dino(str(feature_models[1]))
    with pytest.raises(DashError, match="is a vit model, not CLIP"):
        load_clip(str(feature_models[0]))


# ---------------------------------------------------------------- options


def test_config_rejects_bad_options(tmp_path):
    ok = dict(subject_dir=str(tmp_path))
    for extra, message in [
        ({"adapters": [("a", "x"), ("a", "y")]}, "unique"),
        ({"adapters": [("base", "x")]}, "reserved"),
        ({"adapters": [("a b", "x")]}, "not valid"),
        ({"no_base": True}, "nothing to evaluate"),
        ({"adapters": [("a", "x")], "reference": "b"}, "--reference"),
        ({"num_images": 0}, "--num_images"),
        ({"resolution": 1020}, "multiple of 8"),
        ({"token": "two words"}, "one word"),
        ({"prompts": "30"}, "--prompts"),
    ]:
        with pytest.raises(DashError, match=message):
            EvalConfig(**ok, **extra)
    config = EvalConfig(**ok, adapters=[("lora", "x"), ("dash", "y")])
    assert config.rows() == [("base", None), ("lora", "x"), ("dash", "y")] and config.reference_row() == "lora"


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """A plain LoRA (no directions selected) and a LoRA-Dash adapter, both with trained-looking weights."""
    folders = {}
    for name, seed, select in (("lora", 1, False), ("dash", 2, True)):
        pipe = build_tiny_sdxl_pipeline()
        inject_dash(pipe.unet, DashConfig(rank=2, num_directions=3))
        perturb_adapter(pipe.unet, seed=seed, select=select, scale=0.1)
        folders[name] = tmp_path_factory.mktemp(name)
        save_adapter(folders[name], pipe.unet)
    return folders


def _evaluate(out: Path, feature_models, adapters) -> EvalConfig:
    dino_dir, clip_dir = feature_models
    return EvalConfig(
        subject_dir=str(SHARED / "dog"),
        output_dir=str(out),
        base="builtin:tiny-sdxl",
        adapters=[("lora", str(adapters["lora"])), ("dash", str(adapters["dash"]))],
        num_images=2,
        prompts="2",
        steps=2,
        resolution=32,
        batch_size=2,
        grid_cell=32,
        dino_model=str(dino_dir),
        clip_model=str(clip_dir),
        device="cpu",
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@needs_shared
def test_end_to_end_on_the_real_dog_photos(tmp_path, feature_models, adapters):
    result = run(_evaluate(tmp_path / "run1", feature_models, adapters))
    out = result.output_dir
    for name in ("scores.csv", "summary.csv", "paired.csv", "results.md", "run.json", "grid_base.png", "grid_lora.png", "grid_dash.png", "grid_compare.png"):
        assert (out / name).is_file(), name

    scores = _rows(out / "scores.csv")
    assert len(scores) == 3 * 2 * 2
    assert [r["adapter"] for r in scores[::4]] == ["base", "lora", "dash"]
    assert {r["prompt"] for r in scores} == {"a sks dog in the jungle", "a sks dog in the snow"}
    assert {r["clip_t_text"] for r in scores} == {"a dog in the jungle", "a dog in the snow"}
    assert [int(r["seed"]) for r in scores[:4]] == [0, 1, 1000, 1001]
    assert all((out / r["file"]).is_file() and Image.open(out / r["file"]).size == (32, 32) for r in scores)

    summary = _rows(out / "summary.csv")
    assert [(r["adapter"], r["prompt_index"], r["n"]) for r in summary] == [(a, p, n) for a in ("base", "lora", "dash") for p, n in (("all", "4"), ("0", "2"), ("1", "2"))]
    base_dino = [float(r["dino"]) for r in scores if r["adapter"] == "base"]
    assert float(summary[0]["dino_mean"]) == pytest.approx(np.mean(base_dino), abs=1e-7)
    assert float(summary[0]["dino_std"]) == pytest.approx(np.std(base_dino, ddof=1), abs=1e-7)
    paired = _rows(out / "paired.csv")
    assert [(r["adapter"], r["reference"], r["n"]) for r in paired] == [("dash", "lora", "4")]

    for adapter in ("lora", "dash"):  # same seeds and prompts, different weights: different images and scores
        mine = [r for r in scores if r["adapter"] == adapter]
        base = [r for r in scores if r["adapter"] == "base"]
        assert max(abs(float(a[m]) - float(b[m])) for a, b in zip(mine, base) for m in ("dino", "clip_i", "clip_t")) > 1e-5
        assert (out / mine[0]["file"]).read_bytes() != (out / base[0]["file"]).read_bytes()

    table = (out / "results.md").read_text(encoding="utf-8")
    assert re.search(r"^\| base \| \(none: base model\) \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| -?[\d.]+ ± [\d.]+ \| 4 \|$", table, flags=re.M)
    assert "| dash | " in table and "Paired differences against `lora`" in table and "ΔCLIP-T" in table
    grid = Image.open(out / "grid_lora.png")
    assert grid.size[0] == 2 * 32 and grid.size[1] > 2 * 32
    assert Image.open(out / "grid_compare.png").size[0] == 3 * 32

    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["feature_models"]["dino"]["name"] == str(feature_models[0]) and record["feature_models"]["clip"]["model_class"] == "CLIPModel"
    assert [p["seeds"] for p in record["prompts"]] == [[0, 1], [1000, 1001]]
    assert [r["name"] for r in record["rows"]] == ["base", "lora", "dash"] and record["rows"][2]["file"]["sha256"]
    assert len(record["subject"]["references"]) == 5 and record["versions"]["diffusers"]
    assert record["options"]["num_images"] == 2 and record["generation"]["scheduler"]

    again = run(_evaluate(tmp_path / "run2", feature_models, adapters))
    assert (again.output_dir / "scores.csv").read_text() == (out / "scores.csv").read_text()
    assert (again.output_dir / "summary.csv").read_text() == (out / "summary.csv").read_text()
    assert all((again.output_dir / r["file"]).read_bytes() == (out / r["file"]).read_bytes() for r in scores)

    with pytest.raises(DashError, match="already holds a run"):
        run(_evaluate(tmp_path / "run1", feature_models, adapters))
