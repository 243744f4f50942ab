"""Loss masks in the Train tab: matched to the photos by name, checked before anything is stored, kept
beside the dataset, and handed to the trainer as ``--instance_mask_dir``."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app.datasets import DataFolder
from app.train_requests import check_request, make_config
from dash_diffusion.errors import DashError


def draw_pairs(folder: Path, stems: list[str], size: int = 40) -> tuple[list[Path], list[Path]]:
    """Photos (a red square on grey, heights alternating) and their masks (white over the square)."""
    photos, masks = folder / "photos", folder / "masks"
    photos.mkdir(parents=True)
    masks.mkdir(parents=True)
    photo_paths, mask_paths = [], []
    for index, stem in enumerate(stems):
        width, height = size, size + 8 * (index % 2)
        photo = Image.new("RGB", (width, height), (128, 128, 128))
        ImageDraw.Draw(photo).rectangle([10, 10, 30, 30], fill=(220, 30, 30))
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).rectangle([10, 10, 30, 30], fill=255)
        photo_paths.append(photos / f"{stem}.jpg")
        photo.save(photo_paths[-1])
        mask_paths.append(masks / f"{stem}.png")
        mask.save(mask_paths[-1])
    return photo_paths, mask_paths


@pytest.fixture
def data(tmp_path) -> DataFolder:
    return DataFolder(tmp_path / "data")


def test_uploaded_masks_are_stored_beside_the_dataset_under_the_photos_names(data, tmp_path):
    photos, masks = draw_pairs(tmp_path, ["my dog 1", "my dog 2", "my dog 3"])
    name, check = data.store_upload(photos, "dog", masks)
    assert name == "dog" and len(check.usable) == 3
    folder = data.stored_masks("dog")
    assert folder == data.root / "masks" / "dog"
    assert sorted(p.name for p in folder.iterdir()) == ["my_dog_1.png", "my_dog_2.png", "my_dog_3.png"]
    assert sorted(p.stem for p in data.resolve("dog").iterdir()) == ["my_dog_1", "my_dog_2", "my_dog_3"], "no mask inside the dataset"
    stored = Image.open(folder / "my_dog_2.png")
    assert stored.mode == "L" and stored.size == Image.open(photos[1]).size


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda masks: masks[0].rename(masks[0].with_name("cat.png")), "loss mask 'cat.png' matches no photo"),
        (lambda masks: masks[1].unlink(), "no loss mask for dog_1.jpg"),
        (lambda masks: Image.new("L", (12, 12), 255).save(masks[0]), "is 12x12 but its photo is 40x40"),
        (lambda masks: Image.new("L", (40, 48), 0).save(masks[1]), "black everywhere"),
        (lambda masks: masks[2].write_text("not an image"), "cannot be read as an image"),
    ],
)
def test_a_bad_mask_set_stores_nothing(data, tmp_path, spoil, message):
    photos, masks = draw_pairs(tmp_path, ["dog_0", "dog_1", "dog_2"])
    spoil(masks)
    with pytest.raises(DashError, match=message):
        data.store_upload(photos, "dog", [path for path in sorted(masks[0].parent.iterdir())])
    assert data.datasets() == [] and not (data.root / "masks" / "dog").exists()


def test_new_masks_replace_a_datasets_old_ones_and_a_new_dataset_inherits_none(data, tmp_path):
    photos, masks = draw_pairs(tmp_path, ["dog_0", "dog_1", "dog_2"])
    data.store_upload(photos, "dog", masks)
    half = Image.new("L", (40, 40), 0)
    ImageDraw.Draw(half).rectangle([0, 0, 19, 39], fill=255)
    half.save(masks[0])
    assert data.attach_masks("dog", masks) == 3
    assert Image.open(data.masks_dir("dog") / "dog_0.png").getpixel((30, 5)) == 0, "the new mask replaced the old one"
    assert not [p for p in data.masks_dir("dog").parent.iterdir() if p.name.startswith(".")], "no staging left behind"
    # a dataset deleted by hand leaves its masks; photos uploaded again under its name must not pick them up
    for photo in data.resolve("dog").iterdir():
        photo.unlink()
    data.resolve("dog").rmdir()
    name, _ = data.store_upload(photos, "dog")
    assert name == "dog" and data.stored_masks("dog") is None


def test_the_mask_folder_becomes_the_trainers_instance_mask_dir(data, tmp_path):
    photos, masks = draw_pairs(tmp_path, ["dog_0", "dog_1", "dog_2"])
    data.store_upload(photos, "dog", masks)
    request = check_request("LoRA-Dash", "quick", {"resolution": 32})
    common = {"base": "builtin:tiny-sdxl", "dataset_folder": data.resolve("dog"), "class_dir": tmp_path / "class", "output_dir": tmp_path / "run",
              "resolution": 32, "device": "cpu"}
    assert make_config(request, **common, mask_dir=data.stored_masks("dog")).instance_mask_dir == str(data.masks_dir("dog"))
    assert make_config(request, **common).instance_mask_dir is None
    with pytest.raises(DashError, match="unknown option 'instance_mask_dir'"):
        check_request("LoRA-Dash", "quick", {"instance_mask_dir": "/etc"})  # a path only ever comes from the app's own folder
