"""Loss masks (--instance_mask_dir): masks are cropped and flipped with their photos, weighted pixels alone
carry gradient, bad masks fail in one line, and a run trains and resumes with them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from train_helpers import (
    assert_same_files,
    draw_subject,
    killed_then_resumed,
    tiny_config,
)

import dash_diffusion.training.train as train_module
from dash_diffusion.data.dreambooth import DreamBoothDataset
from dash_diffusion.data.masks import crop_like, latent_weights
from dash_diffusion.errors import DataError
from dash_diffusion.training.sdxl import diffusion_loss


def draw_masks(photos: Path, folder: Path) -> Path:
    """A mask per photo of :func:`draw_subject`: white on the figure's body square, black elsewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    for photo in sorted(photos.glob("*.png")):
        with Image.open(photo) as image:
            w, h = image.size
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=255)
        mask.save(folder / photo.name)
    return folder


def test_mask_is_cropped_where_its_photo_is():
    mask = Image.new("L", (32, 40), 0)  # width 32, height 40: covers 32 x 32 without resizing
    ImageDraw.Draw(mask).rectangle([0, 30, 31, 39], fill=255)  # rows 30..39 white
    cropped = crop_like(mask, (40, 32), (4, 0), (32, 32))
    assert cropped.shape == (1, 32, 32) and cropped.dtype == torch.uint8
    assert (cropped[0, 26:] == 255).all() and (cropped[0, :26] == 0).all()  # rows 30..35 of the photo, shifted by the crop's top


def test_dataset_crops_each_mask_with_its_photo(tmp_path):
    photos = draw_subject(tmp_path / "figure")
    dataset = DreamBoothDataset(photos, "a photo of sks figure", resolution=32, center_crop=True, instance_mask_dir=draw_masks(photos, tmp_path / "masks"))
    for index in range(dataset.instance_len):
        item = dataset[index]
        mask = item["loss_mask"]
        assert mask.shape == (1, 32, 32)
        red = (item["pixel_values"][0] > 0.5) & (item["pixel_values"][1] < -0.5)  # the figure's red body
        assert (mask[0][red] > 128).float().mean() > 0.95, "the white part of the mask lies on the body"
        background = item["pixel_values"][0] < 0.3  # neither the red body nor the yellow head
        assert (mask[0][background] < 128).float().mean() > 0.95, "the background is black in the mask"


def test_latent_weights_average_each_patch():
    mask = torch.zeros(1, 16, 16, dtype=torch.uint8)
    mask[:, :8, :4] = 255
    weights = latent_weights(mask, (2, 2))
    torch.testing.assert_close(weights, torch.tensor([[[0.5, 0.0], [0.0, 0.0]]]))


class _Scheduler:
    config = type("Config", (), {"prediction_type": "epsilon"})()


def test_weighted_loss_is_the_mean_over_the_masked_pixels_and_ignores_the_rest():
    pred = torch.randn(2, 4, 6, 6, requires_grad=True)
    target = torch.randn(2, 4, 6, 6)
    steps = torch.tensor([10, 20])
    ones = torch.ones(2, 1, 6, 6)
    torch.testing.assert_close(diffusion_loss(pred, target, steps, _Scheduler(), None, ones), diffusion_loss(pred, target, steps, _Scheduler(), None))
    half = torch.zeros(2, 1, 6, 6)
    half[..., :3] = 1.0
    loss = diffusion_loss(pred, target, steps, _Scheduler(), None, half)
    torch.testing.assert_close(loss, (pred[..., :3] - target[..., :3]).square().mean())
    loss.backward()
    assert (pred.grad[..., 3:] == 0).all() and (pred.grad[..., :3] != 0).any(), "unmasked pixels carry no gradient"


def test_bad_masks_fail_in_one_line(tmp_path):
    photos = draw_subject(tmp_path / "figure")
    masks = draw_masks(photos, tmp_path / "masks")
    options = {"instance_prompt": "a photo of sks figure", "resolution": 32}
    with pytest.raises(DataError, match="is not a folder"):
        DreamBoothDataset(photos, instance_mask_dir=tmp_path / "nowhere", **options)
    (masks / "figure_1.png").unlink()
    with pytest.raises(DataError, match=r"no loss mask for 'figure_1.png' .* add figure_1.png"):
        DreamBoothDataset(photos, instance_mask_dir=masks, **options)
    Image.new("L", (10, 10), 255).save(masks / "figure_1.png")
    with pytest.raises(DataError, match=r"loss mask 'figure_1.png' is 10x10 but its photo 'figure_1.png' is 64x40"):
        DreamBoothDataset(photos, instance_mask_dir=masks, **options)
    Image.new("L", (64, 40), 0).save(masks / "figure_1.png")
    with pytest.raises(DataError, match="black everywhere"):
        DreamBoothDataset(photos, instance_mask_dir=masks, **options)


def test_masked_run_trains_flips_and_resumes_exactly(tmp_path, monkeypatch):
    photos = draw_subject(tmp_path / "figure")
    options = {
        "instance_dir": str(photos),
        "instance_mask_dir": str(draw_masks(photos, tmp_path / "masks")),
        "random_flip": True,
        "max_train_steps": 4,
        "checkpointing_steps": 2,
    }
    reference = train_module.train(tiny_config(tmp_path / "a", **options))
    unmasked = train_module.train(tiny_config(tmp_path / "c", **{**options, "instance_mask_dir": None}))
    with pytest.raises(AssertionError):
        assert_same_files(reference, unmasked)  # the masks change what is learnt

    resumed = killed_then_resumed(monkeypatch, tmp_path / "b", 2, **options)
    assert_same_files(reference, resumed, atol=1e-6)


def test_feed_flips_the_weights_with_the_latents(tmp_path):
    from dash_diffusion.training.feed import TrainingFeed

    photos = draw_subject(tmp_path / "figure")
    dataset = DreamBoothDataset(photos, "a photo of sks figure", resolution=32, instance_mask_dir=draw_masks(photos, tmp_path / "masks"))
    feed = TrainingFeed.__new__(TrainingFeed)  # only the dataset and device are needed for the weights
    feed.dataset, feed.device = dataset, torch.device("cpu")
    plain, flipped = feed._loss_weights([0, 0], [False, True], (4, 4))
    torch.testing.assert_close(flipped, torch.flip(plain, dims=(-1,)))
    assert plain.shape == (1, 4, 4)
