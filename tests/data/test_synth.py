"""The synthetic generator: determinism, its dataset opening cleanly, calibration sets, video, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fcn_edge.data import open_dataset, open_images
from fcn_edge.data.synth import (
    SynthConfig,
    class_names,
    count_video_frames,
    render_scene,
    scene_rng,
    write_calibration_set,
    write_synthetic_dataset,
    write_synthetic_video,
)
from fcn_edge.errors import DataError
from tests.conftest import assert_one_line_error

SMALL = dict(train=6, val=3, size=(64, 80))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("image_format", ["jpg", "png"])
def test_same_seed_byte_identical_different_seed_differs(tmp_path, image_format):
    config = SynthConfig(**SMALL, seed=5, image_format=image_format)
    write_synthetic_dataset(tmp_path / "a", config, show_progress=False)
    write_synthetic_dataset(tmp_path / "b", config, show_progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 2 * (6 + 3) + 1 and a == b
    write_synthetic_dataset(tmp_path / "c", SynthConfig(**SMALL, seed=6, image_format=image_format),
                            show_progress=False)
    c = _files(tmp_path / "c")
    assert c.keys() == a.keys()
    changed = [name for name in a if name != "dataset.json" and a[name] != c[name]]
    assert len(changed) == len(a) - 1


def test_image_i_does_not_depend_on_the_count(tmp_path):
    write_synthetic_dataset(tmp_path / "few", SynthConfig(train=2, val=1, size=(64, 64)), show_progress=False)
    write_synthetic_dataset(tmp_path / "more", SynthConfig(train=4, val=1, size=(64, 64)), show_progress=False)
    for name in ("train/images/00001.jpg", "train/masks/00001.png", "val/masks/00000.png"):
        assert (tmp_path / "few" / name).read_bytes() == (tmp_path / "more" / name).read_bytes()


def test_synthetic_dataset_opens_in_the_folder_layout(tmp_path):
    write_synthetic_dataset(tmp_path / "s", SynthConfig(**SMALL, num_classes=7), show_progress=False)
    described = json.loads((tmp_path / "s" / "dataset.json").read_text())
    assert described["num_classes"] == 7 and described["splits"]["train"]["count"] == 6
    train = open_dataset(tmp_path / "s", "train")
    val = open_dataset(tmp_path / "s", "val")
    assert len(train) == 6 and len(val) == 3
    assert train.num_classes == 7 and train.class_names == class_names(7) and train.palette[1] == (128, 0, 0)
    seen = set()
    for sample in train:
        assert sample.image.shape == (64, 80, 3) and sample.mask.shape == (64, 80)
        seen |= set(np.unique(sample.mask).tolist())
    assert seen <= set(range(7)) and 0 in seen and len(seen) >= 3


def test_classes_differ_in_colour_and_texture():
    """Each object class covers a real share of pixels, and objects are not flat colour."""
    counts = np.zeros(5)
    for index in range(100):
        image, mask = render_scene(scene_rng(0, "train", index), (64, 64), 5)
        counts += np.bincount(mask.ravel(), minlength=5)
        for cls in np.unique(mask)[1:]:
            inside = image[mask == cls].astype(float)
            if len(inside) > 200:
                assert inside.std(axis=0).mean() > 8  # textured, not a flat fill
    share = counts / counts.sum()
    assert share[0] > 0.4 and (share[1:] > 0.02).all()


def test_overwrite_policy(tmp_path):
    out = tmp_path / "s"
    write_synthetic_dataset(out, SynthConfig(train=1, val=1, size=(32, 32)), show_progress=False)
    with pytest.raises(DataError, match="--overwrite"):
        write_synthetic_dataset(out, SynthConfig(train=2, val=1, size=(32, 32)), show_progress=False)
    assert len(list((out / "train" / "images").iterdir())) == 1  # untouched
    write_synthetic_dataset(out, SynthConfig(train=2, val=1, size=(32, 32)), overwrite=True, show_progress=False)
    assert len(list((out / "train" / "images").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary folders left behind


def test_failure_leaves_nothing_half_written(tmp_path, monkeypatch):
    import fcn_edge.data.synth as synth

    calls = {"n": 0}
    real = synth.encode_palette_png

    def failing(mask, palette):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(mask, palette)

    monkeypatch.setattr(synth, "encode_palette_png", failing)
    with pytest.raises(DataError, match="No space left"):
        write_synthetic_dataset(tmp_path / "s", SynthConfig(train=4, val=1, size=(32, 32)), show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_calibration_set_and_list(tmp_path):
    listed = write_calibration_set(tmp_path / "calib" / "synth", 4, size=(48, 64), seed=1)
    assert listed == tmp_path / "calib" / "synth.txt"
    dataset = open_images(listed)
    assert len(dataset) == 4 and dataset[0].image.shape == (48, 64, 3) and dataset[0].mask is None
    train_first, _ = render_scene(scene_rng(1, "train", 0), (48, 64), 5)
    assert not np.array_equal(dataset[0].image, train_first)  # its own stream: not a training image


@pytest.mark.parametrize("name, fourcc", [("clip.mp4", "mp4v"), ("clip.avi", "MJPG")])
def test_video_round_trip(tmp_path, name, fourcc):
    info = write_synthetic_video(tmp_path / name, frames=12, size=(64, 96), fps=10, seed=2,
                                 labels_path=tmp_path / "labels.npz")
    assert info.fourcc == fourcc and info.frames == 12
    assert count_video_frames(tmp_path / name) == 12
    import cv2

    capture = cv2.VideoCapture(str(tmp_path / name))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (64, 96, 3)
    labels = np.load(tmp_path / "labels.npz")["labels"]
    assert labels.shape == (12, 64, 96) and labels.dtype == np.uint8
    assert not np.array_equal(labels[0], labels[-1])  # the shapes move


def test_video_needs_a_known_container(tmp_path):
    with pytest.raises(DataError, match=r"\.mp4"):
        write_synthetic_video(tmp_path / "clip.mkv", frames=2)


def test_cli_synth(run_cli, tmp_path):
    out = tmp_path / "data"
    done = run_cli("synth", "--out", out, "--train", 4, "--val", 2, "--size", "64x64", "--classes", 4,
                   "--seed", 3, "--calib", 2, "--video", tmp_path / "clip.avi", "--video-frames", 5,
                   "--video-size", "48x64", check=True)
    assert "wrote 4 train + 2 val images" in done.stdout
    assert len(list((out / "train" / "masks").glob("*.png"))) == 4
    assert (out / "calib.txt").read_text().count("calib/") == 2
    assert count_video_frames(tmp_path / "clip.avi") == 5 and (tmp_path / "clip.avi.labels.npz").is_file()
    again = run_cli("synth", "--out", out, "--train", 1)
    assert_one_line_error(again, "already exists", "--overwrite")
    bad = run_cli("synth", "--out", tmp_path / "x", "--classes", 40)
    assert_one_line_error(bad, "2 to 17 classes")
