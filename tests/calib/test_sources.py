"""Calibration images: deterministic spread-out sampling, bad files skipped and replaced, videos, datasets."""

from __future__ import annotations

import numpy as np
import pytest

from fcn_edge.calib.sources import (CalibrationImage, FrameMaker, collect_images, frames_as_batches, sample_items,
                                    source_kind, spread_indices)
from fcn_edge.errors import DataError


def test_spread_indices_cover_the_source_evenly():
    assert spread_indices(10, 5) == [1, 3, 5, 7, 9]
    assert spread_indices(4, 10) == [0, 1, 2, 3]
    picks = spread_indices(1000, 300)
    assert len(set(picks)) == 300 and picks == sorted(picks)
    gaps = np.diff(picks)
    assert gaps.min() >= 3 and gaps.max() <= 4          # no clumps, nothing skipped for long
    assert picks[0] < 4 and picks[-1] > 995
    assert spread_indices(0, 5) == [] and spread_indices(5, 0) == []


def test_bad_items_are_replaced_by_their_nearest_neighbour():
    bad = {3, 4}

    def load(i):
        return None if i in bad else CalibrationImage(str(i), np.zeros((1, 1, 3), np.uint8), "", i)

    picked = [im.index for im in sample_items(10, 5, load)]
    # wanted 1,3,5,7,9: 3 is bad -> 4 is bad too -> 2; nothing else moves
    assert picked == [1, 2, 5, 7, 9]
    # fewer good items than asked: all of them
    assert [im.index for im in sample_items(5, 5, load)] == [0, 1, 2]


def _folder_with_bad_images(tmp_path, count=12, bad=(3, 7)):
    from fcn_edge.data.imageio import write_image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"img_{i:03d}.png"
        if i in bad:
            path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        else:
            write_image(path, rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))
    return folder


def test_folder_source_skips_and_counts_bad_images(tmp_path):
    folder = _folder_with_bad_images(tmp_path)
    maker = FrameMaker((32, 64))
    calib = collect_images(folder, 6, maker, show_progress=False)
    assert len(calib) == 6
    # wanted 1,3,5,7,9,11; 3 and 7 are bad and replaced by 4 and 8
    assert [im.index for im in calib.images] == [1, 4, 5, 8, 9, 11]
    assert calib.report.count == 2 and all("img_003" in f or "img_007" in f for f in calib.report.files)
    assert all(im.frame.shape == (32, 64, 3) and im.frame.dtype == np.uint8 for im in calib.images)
    again = collect_images(folder, 6, maker, show_progress=False)
    assert [im.name for im in again.images] == [im.name for im in calib.images]
    assert again.sha256 == calib.sha256
    assert calib.describe()["skipped_count"] == 2


def test_frames_use_the_runners_resize_and_channel_order(tmp_path):
    from fcn_edge.data import read_image, resize_for_network

    folder = _folder_with_bad_images(tmp_path, count=3, bad=())
    bgr = collect_images(folder, 1, FrameMaker((32, 64), "BGR"), show_progress=False).images[0]
    rgb = collect_images(folder, 1, FrameMaker((32, 64), "RGB"), show_progress=False).images[0]
    expected = resize_for_network(read_image(bgr.name), (32, 64))
    np.testing.assert_array_equal(bgr.frame, expected)
    np.testing.assert_array_equal(rgb.frame, expected[:, :, ::-1])


def test_held_out_images_are_not_calibration_images(tmp_path):
    folder = _folder_with_bad_images(tmp_path, count=12, bad=())
    calib = collect_images(folder, 4, FrameMaker((16, 16)), held_out=3, show_progress=False)
    used = {im.index for im in calib.images}
    held = {im.index for im in calib.held_out}
    assert len(held) == 3 and not used & held


def test_list_file_source(tmp_path):
    from fcn_edge.data.synth import write_calibration_set

    listing = write_calibration_set(tmp_path / "calib", 9, size=(40, 40))
    assert source_kind(listing) == "list"
    calib = collect_images(listing, 3, FrameMaker((32, 32)), show_progress=False)
    assert [im.index for im in calib.images] == [1, 4, 7]
    assert calib.available == 9


def test_video_frames_are_sampled_evenly(tmp_path):
    from fcn_edge.data.synth import write_synthetic_video

    video = write_synthetic_video(tmp_path / "clip.avi", frames=30, size=(48, 64)).path
    assert source_kind(video) == "video"
    calib = collect_images(video, 5, FrameMaker((32, 32)), held_out=2, show_progress=False)
    assert [im.index for im in calib.images] == [3, 9, 15, 21, 27]
    assert calib.kind == "video" and calib.available == 30
    assert all(im.name.endswith(f"#frame={im.index}") for im in calib.images)
    assert len(calib.held_out) == 2 and not {i.index for i in calib.held_out} & {3, 9, 15, 21, 27}
    assert collect_images(video, 5, FrameMaker((32, 32)), show_progress=False).sha256 == calib.sha256


def test_dataset_layout_source_uses_its_train_split(synth_data):
    assert source_kind(synth_data) == "folder"
    calib = collect_images(synth_data, 5, FrameMaker((32, 32)), show_progress=False)
    assert calib.available == 40 and all("/train/" in im.name for im in calib.images)
    val = collect_images(synth_data, 5, FrameMaker((32, 32)), split="val", show_progress=False)
    assert val.available == 30 and all("/val/" in im.name for im in val.images)


def test_unusable_sources_are_one_sentence_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        collect_images(tmp_path / "nothing", 5, FrameMaker((8, 8)), show_progress=False)
    odd = tmp_path / "notes.docx"
    odd.write_text("x")
    with pytest.raises(DataError, match="neither an image"):
        collect_images(odd, 5, FrameMaker((8, 8)), show_progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        collect_images(empty, 5, FrameMaker((8, 8)), show_progress=False)


def test_static_batches_are_filled_with_the_first_frames():
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(5)]
    batches = frames_as_batches(frames, 2)
    assert [b.shape[0] for b in batches] == [2, 2, 2]
    assert batches[-1][0, 0, 0, 0] == 4 and batches[-1][1, 0, 0, 0] == 0
