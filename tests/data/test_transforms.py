"""Transforms: ignore padding, paired flips, seeds, and the one shared network resize."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fcn_edge.data.transforms import (
    EvalTransform,
    TrainTransform,
    hflip,
    labels_to_size,
    mean_fill_colour,
    pad_to,
    resize_for_network,
    resize_labels,
    to_network_input,
)
from fcn_edge.artifacts.modelinfo import Preprocessing


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (30, 40)).astype(np.uint8)
    return image, mask


def test_padding_uses_ignore_for_masks_and_fill_for_images(pair):
    image, mask = pair
    padded_image, padded_mask = pad_to(image, mask, (50, 45), fill=(1, 2, 3))
    assert padded_image.shape == (50, 45, 3) and padded_mask.shape == (50, 45)
    assert (padded_mask[30:] == 255).all() and (padded_mask[:, 40:] == 255).all()
    np.testing.assert_array_equal(padded_mask[:30, :40], mask)
    assert (padded_image[30:] == (1, 2, 3)).all() and (padded_image[:, 40:] == (1, 2, 3)).all()


def test_crop_larger_than_image_pads_with_ignore(pair):
    image, mask = pair
    transform = TrainTransform(crop_size=(64, 64), scale_range=(1.0, 1.0), flip=False, fill=(7, 7, 7))
    out_image, out_mask = transform(image, mask, np.random.default_rng(0))
    assert out_image.shape == (64, 64, 3) and out_mask.shape == (64, 64)
    padded = out_mask == 255
    assert padded.sum() == 64 * 64 - 30 * 40
    assert (out_image[padded] == 7).all()


def test_flip_flips_image_and_mask_together(pair):
    image, mask = pair
    flipped_image, flipped_mask = hflip(image, mask)
    np.testing.assert_array_equal(flipped_image[:, 0], image[:, -1])
    np.testing.assert_array_equal(flipped_mask[:, 0], mask[:, -1])
    # with a random crop the pairing must survive: the mask is a function of the image here
    keyed = (image[:, :, 0] % 5).astype(np.uint8)
    transform = TrainTransform(crop_size=(20, 20), scale_range=(1.0, 1.0), flip=True)
    unflipped = TrainTransform(crop_size=(20, 20), scale_range=(1.0, 1.0), flip=False)
    outcomes = set()
    for seed in range(20):
        out_image, out_mask = transform(image, keyed, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_image[:, :, 0] % 5, out_mask)
        plain_image, _ = unflipped(image, keyed, np.random.default_rng(seed))
        flipped = bool((out_image != plain_image).any())
        outcomes.add(flipped)
        if flipped:
            np.testing.assert_array_equal(out_image, plain_image[:, ::-1])
    assert outcomes == {True, False}  # both flipped and unflipped crops happen


def test_same_seed_same_result_different_seed_differs(pair):
    image, mask = pair
    transform = TrainTransform(crop_size=(24, 24), scale_range=(0.5, 2.0))
    a = transform(image, mask, np.random.default_rng(42))
    b = transform(image, mask, np.random.default_rng(42))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    results = {transform(image, mask, np.random.default_rng(s))[0].tobytes() for s in range(8)}
    assert len(results) > 1


def test_scaling_never_invents_labels(pair):
    image, mask = pair
    transform = TrainTransform(crop_size=None, scale_range=(1.7, 1.7), flip=False)
    out_image, out_mask = transform(image, mask, np.random.default_rng(0))
    assert out_image.shape == (51, 68, 3) and out_mask.shape == (51, 68)
    assert set(np.unique(out_mask)) <= set(np.unique(mask))


def test_resize_for_network_is_bilinear_and_does_not_copy_at_size(pair):
    image, _ = pair
    assert resize_for_network(image, (30, 40)) is image
    out = resize_for_network(image, (64, 96))
    assert out.shape == (64, 96, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.resize(image, (96, 64), interpolation=cv2.INTER_LINEAR))
    with pytest.raises(ValueError):
        resize_for_network(image[:, :, 0], (10, 10))


def test_labels_go_back_with_nearest_neighbour():
    prediction = np.array([[0, 1], [2, 3]], np.uint8)
    restored = labels_to_size(prediction, (4, 6))
    assert restored.shape == (4, 6) and set(np.unique(restored)) == {0, 1, 2, 3}
    assert resize_labels(np.array([[0, 300]], np.int64), (1, 4)).dtype == np.int64


def test_eval_transform_keeps_the_original_mask(pair):
    image, mask = pair
    transform = EvalTransform(size=(64, 64))
    net_image, kept = transform(image, mask)
    assert net_image.shape == (64, 64, 3) and kept is mask
    prediction = np.zeros((64, 64), np.uint8)
    assert transform.restore(prediction, mask.shape).shape == mask.shape


@pytest.mark.parametrize("pre", [Preprocessing.caffe(), Preprocessing.imagenet()])
def test_mean_fill_normalises_to_about_zero(pre):
    fill = mean_fill_colour(pre)
    x = to_network_input(np.full((2, 2, 3), fill, np.uint8), pre)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert np.abs(x).max() <= 0.5 * pre.scale / min(pre.std) + 1e-5  # only the rounding to whole pixels


def test_to_network_input_swaps_channels_for_rgb_models():
    image = np.zeros((1, 1, 3), np.uint8)
    image[0, 0] = (10, 20, 30)  # B, G, R
    x = to_network_input(image, Preprocessing("RGB", "BGR", (0, 0, 0), (1, 1, 1), 1.0))
    np.testing.assert_array_equal(x[:, 0, 0], [30, 20, 10])
