"""Tests for image loading, captions and the DreamBooth dataset (all images made in tmp_path)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dash_diffusion.data.buckets import BucketBatchSampler, cover_size, resize_and_crop
from dash_diffusion.data.dreambooth import (
    DreamBoothDataset,
    collate_examples,
    default_class_name,
    default_instance_prompt,
    flip_batch,
    flip_example,
    read_caption,
)
from dash_diffusion.data.images import IMAGE_EXTENSIONS, list_image_files, load_rgb, to_rgb
from dash_diffusion.errors import DataError


def _save(image: Image.Image, path: Path, **kwargs: object) -> Path:
    image.save(path, **kwargs)
    return path


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    values = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(values)


# -- images.py --------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(Image.new("RGB", (40, 20), (200, 10, 10)), tmp_path / "rotated.jpg", exif=exif)
    image = load_rgb(path)
    assert image is not None
    assert image.size == (20, 40)
    assert image.mode == "RGB"


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 128))
    image = load_rgb(_save(rgba, tmp_path / "alpha.png"))
    assert image is not None and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)
    red, green, blue = image.getpixel((1, 0))
    assert red == 255 and 120 <= green <= 135 and green == blue

    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (0, 255))
    image = load_rgb(_save(la, tmp_path / "la.png"))
    assert image is not None
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (0, 0, 0)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 255, 10, 200, 30] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    opaque = load_rgb(_save(palette, tmp_path / "opaque.png"))
    assert opaque is not None and opaque.mode == "RGB"
    assert opaque.getpixel((0, 0)) == (0, 0, 255)
    assert opaque.getpixel((1, 0)) == (10, 200, 30)

    keyed = load_rgb(_save(palette, tmp_path / "keyed.gif", transparency=0))
    assert keyed is not None
    assert keyed.getpixel((0, 0)) == (255, 255, 255)
    assert keyed.getpixel((1, 0)) == (10, 200, 30)


def test_grey_bilevel_and_cmyk_become_rgb(tmp_path: Path) -> None:
    grey = load_rgb(_save(Image.new("L", (3, 3), 77), tmp_path / "grey.png"))
    assert grey is not None and grey.mode == "RGB" and grey.getpixel((1, 1)) == (77, 77, 77)

    bilevel = Image.new("1", (2, 1), 0)
    bilevel.putpixel((1, 0), 1)
    image = load_rgb(_save(bilevel, tmp_path / "bits.bmp"))
    assert image is not None
    assert image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((1, 0)) == (255, 255, 255)

    cmyk = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 255, 255, 0))
    image = load_rgb(_save(cmyk, tmp_path / "print.tif"))
    assert image is not None and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (255, 0, 0)


def test_sixteen_bit_is_scaled_by_its_value_range(tmp_path: Path) -> None:
    deep = Image.new("I;16", (3, 1))
    deep.putdata([1000, 2000, 3000])
    image = load_rgb(_save(deep, tmp_path / "deep.png"))
    assert image is not None and image.mode == "RGB"
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize("mode", ["I;16B", "I", "F"])
def test_high_depth_modes_are_stretched(mode: str) -> None:
    values = np.array([[-2.0, 0.0, 2.0]]) if mode == "F" else np.array([[10, 20, 30]])
    dtype = {"I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    image = Image.frombytes(mode, (3, 1), values.astype(dtype).tobytes())
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_other_modes_convert() -> None:
    assert to_rgb(Image.new("HSV", (1, 1), (0, 255, 255))).getpixel((0, 0)) == (255, 0, 0)
    assert to_rgb(Image.new("YCbCr", (1, 1), (255, 128, 128))).mode == "RGB"


def test_bad_files_give_none_and_a_warning_naming_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    good = _save(_photo(64, 64), tmp_path / "good.jpg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    missing = tmp_path / "missing.png"
    caplog.set_level(logging.WARNING)
    reasons = {empty: "empty", text: "not an image", truncated: "truncated", missing: "cannot read"}
    for path, reason in reasons.items():
        caplog.clear()
        assert load_rgb(path) is None
        assert len(caplog.records) == 1
        message = caplog.records[0].getMessage()
        assert str(path) in message and reason in message
    assert load_rgb(good) is not None


def test_list_image_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("b.png", "a.JPG", "c.webp", ".hidden.jpg", "a.txt", "photo.heic", "raw.cr2"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jpg").write_bytes(b"x")
    caplog.set_level(logging.WARNING)
    files = list_image_files(tmp_path)
    assert [p.name for p in files] == ["a.JPG", "b.png", "c.webp"]
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "photo.heic" in message and "raw.cr2" in message and "a.txt" not in message
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"} == set(IMAGE_EXTENSIONS)


# -- captions and defaults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "expected"),
    [("dog6", "dog"), ("my_red-car", "my red car"), ("Cat_12", "cat"), ("1234", "object"), ("__", "object")],
)
def test_default_class_name(folder: str, expected: str, tmp_path: Path) -> None:
    assert default_class_name(tmp_path / folder) == expected


def test_default_instance_prompt() -> None:
    assert default_instance_prompt("data/dog6") == "a photo of sks dog"


def test_read_caption(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    image = tmp_path / "one.jpg"
    assert read_caption(image) is None
    (tmp_path / "one.txt").write_text("  a photo of sks dog\non the beach \n", encoding="utf-8")
    assert read_caption(image) == "a photo of sks dog on the beach"
    (tmp_path / "one.txt").write_text("   \n")
    assert read_caption(image) is None
    (tmp_path / "one.txt").write_bytes("caf\u00e9 sks".encode("latin-1"))
    caplog.set_level(logging.WARNING)
    caplog.clear()
    assert read_caption(image) == "caf\ufffd sks"
    assert "one.txt" in caplog.records[0].getMessage()


# -- the dataset ----------------------------------------------------------------------------------


def _folder(root: Path, name: str, sizes: list[tuple[int, int]]) -> Path:
    folder = root / name
    folder.mkdir()
    for number, (width, height) in enumerate(sizes):
        _save(_photo(width, height, seed=number), folder / f"img{number}.png")
    return folder


def test_dataset_items(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _folder(tmp_path, "dog6", [(80, 60), (64, 100), (64, 64)])
    (folder / "img1.txt").write_text("a photo of sks dog sleeping")
    (folder / "broken.jpg").write_text("nope")
    caplog.set_level(logging.INFO)
    dataset = DreamBoothDataset(folder, resolution=32, repeats=2)
    assert "broken.jpg" in caplog.text
    assert dataset.instance_prompt == "a photo of sks dog"
    assert "a photo of sks dog" in caplog.text
    assert len(dataset) == dataset.instance_len == 6 and dataset.class_len == 0
    item = dataset[1]
    assert item["pixel_values"].shape == (3, 32, 32) and item["pixel_values"].dtype == torch.float32
    assert -1.0 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1.0
    assert item["prompt"] == "a photo of sks dog sleeping"
    assert dataset[0]["prompt"] == dataset[2]["prompt"] == "a photo of sks dog"
    assert item["original_size"] == (100, 64) and item["target_size"] == (32, 32)
    assert item["is_class"] is False and item["flip"] is False
    assert dataset[4]["example_id"] == 1 and torch.equal(dataset[4]["pixel_values"], item["pixel_values"])


def test_dataset_is_deterministic_and_seeded(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "thing", [(90, 40), (40, 90), (70, 50)])
    first = DreamBoothDataset(folder, "a photo of sks thing", resolution=32)
    random.seed(99)
    second = DreamBoothDataset(folder, "a photo of sks thing", resolution=32)
    assert [e.crop_top_left for e in first.examples] == [e.crop_top_left for e in second.examples]
    assert all(torch.equal(a.pixels, b.pixels) for a, b in zip(first.examples, second.examples))
    crops = {
        tuple(e.crop_top_left for e in DreamBoothDataset(folder, "x", resolution=32, seed=s).examples)
        for s in range(6)
    }
    assert len(crops) > 1


def test_center_crop_dataset_matches_resize_and_crop(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "wide", [(96, 32)])
    dataset = DreamBoothDataset(folder, "p", resolution=32, center_crop=True)
    example = dataset.examples[0]
    assert example.original_size == (32, 96) and example.crop_top_left == (0, 32)
    expected = np.array(_photo(96, 32, seed=0))[:, 32:64]
    assert torch.equal(example.pixels, torch.from_numpy(expected).permute(2, 0, 1))


def test_bucketing_puts_wide_images_in_wide_buckets(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "mixed", [(150, 100), (100, 150), (80, 80), (300, 200)])
    dataset = DreamBoothDataset(folder, "p", resolution=64, bucketing=True, bucket_step=8, center_crop=True)
    sizes = dataset.target_sizes
    assert sizes[0][1] > sizes[0][0] and sizes[1][0] > sizes[1][1] and sizes[2] == (64, 64)
    assert sizes[3] == sizes[0]
    for index, (height, width) in enumerate(sizes):
        item = dataset[index]
        assert item["pixel_values"].shape == (3, height, width)
        resized = cover_size(item["original_size"], item["target_size"])
        assert height * width / (resized[0] * resized[1]) > 0.9
    sampler = BucketBatchSampler(sizes, batch_size=2, seed=0)
    for batch_indices in sampler:
        batch = collate_examples([dataset[i] for i in batch_indices])
        assert batch["pixel_values"].shape[0] == len(batch_indices)


def test_folder_with_only_bad_files_raises_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_text("text")
    (folder / "b.png").write_bytes(b"")
    (folder / "c.heic").write_bytes(b"\x00\x01")
    (folder / "c.txt").write_text("caption only")
    with pytest.raises(DataError) as caught:
        DreamBoothDataset(folder, resolution=32)
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder) in message and "3 files skipped" in message and "a.jpg" in message


def test_missing_and_empty_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        DreamBoothDataset(tmp_path / "nowhere", resolution=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no usable images"):
        DreamBoothDataset(tmp_path / "empty", resolution=32)


def test_class_images_and_pairs(tmp_path: Path) -> None:
    instance = _folder(tmp_path, "dog", [(40, 40), (48, 40)])
    classes = _folder(tmp_path, "class", [(40, 40), (40, 40), (40, 48)])
    dataset = DreamBoothDataset(instance, "a photo of sks dog", resolution=32, repeats=2, class_dir=classes)
    assert dataset.class_prompt == "a photo of a dog"  # the default class prompt reads like the instance one
    assert (dataset.instance_len, dataset.class_len, len(dataset)) == (4, 3, 7)
    assert [dataset[i]["is_class"] for i in range(7)] == [False] * 4 + [True] * 3
    assert dataset[5]["prompt"] == "a photo of a dog"
    assert dataset.pairs() == [(0, 4), (1, 5), (2, 6), (3, 4)]
    with pytest.raises(IndexError):
        dataset[7]


def test_flip_for_is_deterministic(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "dog", [(40, 40)])
    flipping = DreamBoothDataset(folder, "p", resolution=32, random_flip=True, repeats=40, seed=3)
    again = DreamBoothDataset(folder, "p", resolution=32, random_flip=True, repeats=40, seed=3)
    flags = [flipping.flip_for(i, 1) for i in range(40)]
    assert flags == [again.flip_for(i, 1) for i in range(40)]
    assert 5 < sum(flags) < 35
    assert flags != [flipping.flip_for(i, 2) for i in range(40)]
    assert [flipping[i]["flip"] for i in range(40)] == [flipping.flip_for(i, 0) for i in range(40)]
    plain = DreamBoothDataset(folder, "p", resolution=32, repeats=40)
    assert not any(plain.flip_for(i, e) for i in range(40) for e in range(3))


def test_flip_example_mirrors_the_crop_window() -> None:
    image = _photo(90, 30, seed=4)
    cropped, original, crop = resize_and_crop(image, (32, 32), False, random.Random(1))
    pixels = torch.from_numpy(np.array(cropped)).permute(2, 0, 1)
    flipped, new_crop = flip_example(pixels, crop, original, (32, 32))
    # The flipped crop is the window at the new offset of the mirrored resized image.
    resized_h, resized_w = cover_size(original, (32, 32))
    mirrored = np.asarray(image.resize((resized_w, resized_h), Image.Resampling.LANCZOS))[:, ::-1]
    top, left = new_crop
    assert top == crop[0] and left == resized_w - crop[1] - 32
    window = torch.from_numpy(mirrored[top:top + 32, left:left + 32].copy()).permute(2, 0, 1)
    assert torch.equal(flipped, window)
    back, back_crop = flip_example(flipped, new_crop, original, (32, 32))
    assert torch.equal(back, pixels) and back_crop == crop
    latents = torch.arange(16.0).reshape(1, 4, 4)
    assert torch.equal(flip_example(latents, crop, original, (32, 32))[0][0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))


def test_collate_and_flip_batch(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "dog", [(64, 40), (40, 40)])
    dataset = DreamBoothDataset(folder, "p", resolution=32, center_crop=True)
    batch = collate_examples([dataset[0], dataset[1]])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["prompts"] == ["p", "p"]
    assert batch["original_sizes"].tolist() == [[40, 64], [40, 40]]
    assert batch["crop_top_lefts"].tolist() == [[0, 10], [0, 0]]  # resized 32x51: round(9.5) = 10
    assert batch["target_sizes"].tolist() == [[32, 32], [32, 32]]
    assert batch["is_class"].tolist() == [False, False] and batch["indices"].tolist() == [0, 1]
    flipped = flip_batch(batch, [True, False])
    assert torch.equal(flipped["pixel_values"][0], batch["pixel_values"][0].flip(-1))
    assert torch.equal(flipped["pixel_values"][1], batch["pixel_values"][1])
    assert flipped["crop_top_lefts"].tolist() == [[0, 51 - 10 - 32], [0, 0]]
    assert batch["crop_top_lefts"].tolist() == [[0, 10], [0, 0]]  # input untouched
    with pytest.raises(ValueError):
        collate_examples([dataset[0], {**dataset[1], "pixel_values": torch.zeros(3, 16, 32)}])
