"""Tests for aspect-ratio buckets, resize-and-crop and the bucket batch sampler."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from dash_diffusion.data.buckets import (
    BucketBatchSampler,
    cover_size,
    make_buckets,
    nearest_bucket,
    resize_and_crop,
)
from dash_diffusion.errors import DataError


@pytest.mark.parametrize(("resolution", "step"), [(1024, 64), (512, 64), (64, 8), (96, 32)])
def test_buckets_are_multiples_of_step_within_area_and_symmetric(resolution: int, step: int) -> None:
    buckets = make_buckets(resolution, step)
    assert buckets == sorted(set(buckets))
    assert (resolution, resolution) in buckets
    assert any(h != w for h, w in buckets)
    for height, width in buckets:
        assert height % step == 0 and width % step == 0
        assert height * width <= resolution * resolution
        assert max(height, width) <= 4 * min(height, width)
        assert (width, height) in buckets


def test_sdxl_buckets_match_the_known_sizes() -> None:
    buckets = make_buckets(1024)
    for bucket in [(832, 1216), (1216, 832), (896, 1152), (768, 1344), (640, 1536), (512, 2048), (2048, 512)]:
        assert bucket in buckets
    assert make_buckets(1024) == buckets  # deterministic


def test_bucket_limits_and_ratio_are_respected() -> None:
    buckets = make_buckets(512, 64, min_side=256, max_side=768, max_ratio=2.0)
    assert all(256 <= side <= 768 for bucket in buckets for side in bucket)
    assert all(max(h, w) <= 2 * min(h, w) for h, w in buckets)


@pytest.mark.parametrize(("resolution", "step"), [(1000, 64), (32, 64), (64, 0)])
def test_bad_bucket_options_raise_one_line_data_error(resolution: int, step: int) -> None:
    with pytest.raises(DataError) as caught:
        make_buckets(resolution, step)
    assert "\n" not in str(caught.value)


def test_nearest_bucket_by_aspect_ratio() -> None:
    buckets = make_buckets(1024)
    assert nearest_bucket(3000, 3000, buckets) == (1024, 1024)
    height, width = nearest_bucket(1000, 1500, buckets)
    assert width > height and abs(width / height - 1.5) < 0.1
    height, width = nearest_bucket(1500, 1000, buckets)
    assert height > width


def test_nearest_bucket_tie_goes_to_larger_area() -> None:
    assert nearest_bucket(10, 10, [(32, 32), (64, 64), (48, 48)]) == (64, 64)
    assert nearest_bucket(10, 10, [(64, 64), (32, 32)]) == (64, 64)
    # 1:2 and 2:1 are equally far from square in log space; the larger area wins.
    assert nearest_bucket(10, 10, [(32, 64), (80, 40)]) == (80, 40)


def test_cover_size_covers_target_keeping_aspect() -> None:
    assert cover_size((100, 300), (64, 64)) == (64, 192)
    assert cover_size((300, 100), (64, 64)) == (192, 64)
    assert cover_size((64, 64), (64, 64)) == (64, 64)
    height, width = cover_size((333, 517), (56, 72))
    assert height >= 56 and width >= 72 and (height == 56 or width == 72)


def test_center_crop_info() -> None:
    image = Image.new("RGB", (300, 100))  # width 300, height 100
    cropped, original, crop = resize_and_crop(image, (64, 64), center_crop=True, rng=random.Random(0))
    assert cropped.size == (64, 64)
    assert original == (100, 300)
    assert crop == (0, 64)  # resized to 64x192: (192 - 64) / 2 = 64
    tall = Image.new("RGB", (100, 301))
    _, original, crop = resize_and_crop(tall, (64, 64), center_crop=True, rng=random.Random(0))
    assert original == (301, 100)
    assert crop == (round((193 - 64) / 2), 0)


def test_random_crop_is_in_bounds_and_follows_rng() -> None:
    image = Image.new("RGB", (300, 100))
    crops = {resize_and_crop(image, (64, 64), False, random.Random(seed))[2] for seed in range(20)}
    assert all(top == 0 and 0 <= left <= 128 for top, left in crops)
    assert len(crops) > 1
    first = resize_and_crop(image, (64, 64), False, random.Random(7))[2]
    assert resize_and_crop(image, (64, 64), False, random.Random(7))[2] == first


def test_crop_offset_points_at_the_right_pixels() -> None:
    # A gradient image: the crop's top-left pixel must come from column `left` of the resized image.
    image = Image.new("L", (256, 64))
    image.putdata([x for _ in range(64) for x in range(256)])
    cropped, _, (top, left) = resize_and_crop(image, (64, 64), False, random.Random(3))
    assert top == 0
    assert cropped.getpixel((0, 0)) == left


def test_non_square_image_keeps_most_of_its_content_in_its_bucket() -> None:
    buckets = make_buckets(64, 8)
    image = Image.new("RGB", (150, 100), (10, 20, 30))  # 3:2 landscape
    target = nearest_bucket(image.height, image.width, buckets)
    assert target[1] > target[0]
    cropped, original, (top, left) = resize_and_crop(image, target, center_crop=True, rng=random.Random(0))
    resized_h, resized_w = cover_size(original, target)
    kept = (target[0] * target[1]) / (resized_h * resized_w)
    assert kept > 0.9
    assert cropped.size == (target[1], target[0])
    square_kept = 64 * 64 / (64 * 96)  # what a square crop would have kept
    assert kept > square_kept


def _keys() -> list[tuple[int, int]]:
    return [(64, 64)] * 7 + [(48, 80)] * 5 + [(80, 48)] * 2


def test_sampler_batches_never_mix_buckets_and_cover_everything() -> None:
    keys = _keys()
    sampler = BucketBatchSampler(keys, batch_size=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 + 2 + 1
    for batch in batches:
        assert len({keys[i] for i in batch}) == 1
        assert 1 <= len(batch) <= 3
    assert sorted(i for batch in batches for i in batch) == list(range(len(keys)))


def test_sampler_drop_last_len_is_exact() -> None:
    sampler = BucketBatchSampler(_keys(), batch_size=3, seed=1, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2 + 1 + 0
    assert all(len(batch) == 3 for batch in batches)


def test_sampler_is_deterministic_per_seed_and_epoch() -> None:
    keys = _keys()
    first = BucketBatchSampler(keys, batch_size=2, seed=5)
    second = BucketBatchSampler(keys, batch_size=2, seed=5)
    random.seed(12345)  # global RNG state must not matter
    first.set_epoch(3)
    list(first)  # nor how often it was iterated
    second.set_epoch(3)
    assert list(first) == list(second)
    epochs = []
    for epoch in range(4):
        first.set_epoch(epoch)
        epochs.append(list(first))
    assert len({str(batches) for batches in epochs}) > 1
    other_seed = BucketBatchSampler(keys, batch_size=2, seed=6)
    assert list(other_seed) != BucketBatchSampler(keys, batch_size=2, seed=5).batches(0)


def test_sampler_without_shuffle_is_ordered() -> None:
    sampler = BucketBatchSampler([(1, 1), (2, 2), (1, 1), (2, 2)], batch_size=2, shuffle=False)
    assert list(sampler) == [[0, 2], [1, 3]]


def test_sampler_rejects_bad_batch_size() -> None:
    with pytest.raises(DataError):
        BucketBatchSampler(_keys(), batch_size=0)
