"""Odd and broken images and masks, through each command that reads them (eval, train, calibrate, run).

What a user wants, and what is checked:

* grayscale, 16-bit and RGBA images are *used*, converted by the data layer's one set of
  rules (gray copied to B, G and R; 16-bit scaled by 255/65535; alpha dropped), and the
  conversion is said once on stderr;
* corrupt, empty (0 bytes), zero-pixel and truncated images stop eval and train with one
  line naming the file (``--skip-bad-data`` skips and counts them instead); calibrate and
  run, which only need *some* good images, skip each with a warning naming it;
* a mask holding labels outside the classes is one line naming the mask and the values;
* a calibration source with no usable image is one line naming the source.

The module-level readers are covered in tests/data (including fuzzing); this is the
commands' behaviour on top of them.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import assert_one_line_error
from tests.reliability.conftest import random_bytes

TRAIN = ["--iterations", "1", "--width", "1/16", "--crop", "48x48", "--batch-size", "1", "--workers", "0",
         "--device", "cpu", "--val-limit", "3"]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def zero_pixel_png() -> bytes:
    """A PNG whose header says 0 x 0 pixels (invalid, but files like it exist)."""
    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b""))
            + _png_chunk(b"IEND", b""))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _replace_image(split: Path, stem: str, suffix: str, writer) -> Path:
    """Swap ``split/images/<stem>.*`` for a new file (its mask stays)."""
    for old in (split / "images").glob(f"{stem}.*"):
        old.unlink()
    path = split / "images" / f"{stem}{suffix}"
    writer(path)
    return path


def _odd(split: Path) -> None:
    """Val/train images 00000-00002 as grayscale, 16-bit and RGBA PNGs of the same pixels."""
    images = sorted((split / "images").iterdir())
    for index, kind in enumerate(("gray", "16bit", "rgba")):
        pixels = cv2.imread(str(images[index]), cv2.IMREAD_COLOR)
        converted = {"gray": cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY),
                     "16bit": pixels.astype(np.uint16) * 257,
                     "rgba": cv2.cvtColor(pixels, cv2.COLOR_BGR2BGRA)}[kind]
        _replace_image(split, images[index].stem, ".png", lambda p, c=converted: cv2.imwrite(str(p), c))


@pytest.fixture(scope="module")
def odd_data(tiny_data, tmp_path_factory):
    root = _copy(tiny_data, tmp_path_factory.mktemp("rel-odd") / "data")
    for split in ("train", "val"):
        _odd(root / split)
    return root


BROKEN = {
    "corrupt": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + random_bytes(600, seed=3)),
    "empty": lambda p: p.write_bytes(b""),
    "zero-pixels": lambda p: p.write_bytes(zero_pixel_png()),
    "truncated": None,  # a real JPEG cut in half (set below)
}


@pytest.fixture(scope="module")
def broken_data(tiny_data, tmp_path_factory):
    """The tiny dataset with one broken image per kind in val (3 scenes) and train (4 scenes)."""
    root = _copy(tiny_data, tmp_path_factory.mktemp("rel-broken") / "data")
    names = {}
    for split in ("val", "train"):
        images = sorted((root / split / "images").iterdir())
        for image, kind in zip(images, BROKEN):
            if kind == "truncated":
                data = image.read_bytes()
                image.write_bytes(data[: len(data) // 2])
                path = image
            else:
                path = _replace_image(root / split, image.stem, ".png", BROKEN[kind])
            names.setdefault(split, []).append(path.name)
    return root, names


# ---------------------------------------------------------------------------- converted images
def _notes_said(stderr: str) -> None:
    for note in ("grayscale", "16-bit", "alpha"):
        assert note in stderr, (note, stderr)


def test_eval_uses_gray_16bit_and_rgba_images_with_a_note(run_cli, tiny_checkpoint, odd_data):
    completed = run_cli("eval", tiny_checkpoint, "--data", odd_data)
    assert completed.returncode == 0, completed.stderr
    assert "mean IU" in completed.stdout and "3 image" in completed.stdout + completed.stderr
    _notes_said(completed.stderr)


def test_train_uses_them_too(run_cli, odd_data, tmp_path):
    completed = run_cli("train", "--data", odd_data, "--out", tmp_path / "run", *TRAIN)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "run" / "last.pt").is_file()
    _notes_said(completed.stderr)


def test_calibrate_uses_them_too(run_cli, tiny_onnx, odd_data, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    completed = run_cli("calibrate", model, "--images", odd_data / "val" / "images", "--num", "3", "--no-accuracy")
    assert completed.returncode == 0, completed.stderr
    assert "from 3 images" in completed.stdout
    _notes_said(completed.stderr)


def test_run_uses_them_too(run_cli, tiny_onnx, odd_data, tmp_path):
    completed = run_cli("run", tiny_onnx, "--source", odd_data / "val" / "images", "--sink", f"labels:{tmp_path}/out")
    assert completed.returncode == 0, completed.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    _notes_said(completed.stderr)


# ---------------------------------------------------------------------------- broken images
def test_eval_stops_at_a_broken_image_naming_it_or_skips_with_the_flag(run_cli, tiny_checkpoint, broken_data, tmp_path):
    root, names = broken_data
    completed = run_cli("eval", tiny_checkpoint, "--data", root, "--json", tmp_path / "e.json")
    assert_one_line_error(completed)
    assert any(name in completed.stderr for name in names["val"]), completed.stderr
    assert not (tmp_path / "e.json").exists()
    # val has 3 scenes, all broken: skipping them leaves nothing to score -- one line again
    completed = run_cli("eval", tiny_checkpoint, "--data", root, "--skip-bad-data")
    assert_one_line_error(completed, "no image", "3 skipped")
    for name in names["val"]:
        assert name in completed.stderr, (name, completed.stderr)


def test_train_stops_at_a_broken_image_naming_it_or_skips_with_the_flag(run_cli, broken_data, tiny_data, tmp_path):
    root, names = broken_data
    completed = run_cli("train", "--data", root, "--out", tmp_path / "run", *TRAIN)
    assert_one_line_error(completed)
    assert any(name in completed.stderr for name in names["train"] + names["val"]), completed.stderr
    assert not (tmp_path / "run" / "last.pt").exists()
    mixed = _copy(tiny_data, tmp_path / "mixed")  # a good val split, two broken training images
    for stem, kind in (("00000", "corrupt"), ("00001", "zero-pixels")):
        _replace_image(mixed / "train", stem, ".png", BROKEN[kind])
    completed = run_cli("train", "--data", mixed, "--out", tmp_path / "run2", "--skip-bad-data", *TRAIN,
                        "--iterations", "4")  # one epoch: every training image is met once
    assert completed.returncode == 0, completed.stderr
    assert "00000.png" in completed.stderr and "00001.png" in completed.stderr


def test_calibrate_and_run_skip_broken_images_naming_each(run_cli, tiny_onnx, broken_data, tiny_data, tmp_path):
    root, names = broken_data
    folder = tmp_path / "images"
    shutil.copytree(root / "train" / "images", folder)           # 4 broken ...
    for good in sorted((tiny_data / "val" / "images").iterdir()):  # ... and 3 good
        shutil.copy(good, folder / f"good_{good.name}")
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    completed = run_cli("calibrate", model, "--images", folder, "--num", "7", "--no-accuracy")
    assert completed.returncode == 0, completed.stderr
    assert "from 3 images" in completed.stdout
    for name in names["train"]:
        assert name in completed.stderr, (name, completed.stderr)
    completed = run_cli("run", tiny_onnx, "--source", folder, "--sink", f"labels:{tmp_path}/out")
    assert completed.returncode == 0, completed.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    for name in names["train"]:
        assert name in completed.stderr, (name, completed.stderr)


def test_run_on_a_folder_of_only_broken_images_fails(run_cli, tiny_onnx, broken_data):
    root, _ = broken_data
    completed = run_cli("run", tiny_onnx, "--source", root / "val" / "images")
    assert_one_line_error(completed, "none of the 3 image(s)", "images")


# ---------------------------------------------------------------------------- masks
def test_mask_labels_outside_the_classes_name_the_mask(run_cli, tiny_checkpoint, tiny_data, tmp_path):
    from fcn_edge.data.imageio import read_mask, read_palette, write_mask

    root = _copy(tiny_data, tmp_path / "data")
    for split in ("val", "train"):
        mask = sorted((root / split / "masks").iterdir())[0]
        labels = read_mask(mask)
        labels[:4, :4] = 9  # 5 classes: 0-4, and 255 = ignore
        write_mask(mask, labels, read_palette(mask))  # still a palette PNG, as the dataset's masks are
    completed = run_cli("eval", tiny_checkpoint, "--data", root)
    assert_one_line_error(completed, "00000.png", "9")
    completed = run_cli("train", "--data", root, "--out", tmp_path / "run", *TRAIN)
    assert_one_line_error(completed, "00000.png", "9")


# ---------------------------------------------------------------------------- calibration sources
@pytest.mark.parametrize("source", ["only-broken", "empty-folder", "empty-list", "comments-list", "not-a-video"])
def test_calibration_source_without_usable_images(run_cli, tiny_onnx, broken_data, tmp_path, source):
    root, _ = broken_data
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    path = {"only-broken": root / "val" / "images", "empty-folder": tmp_path / "nothing",
            "empty-list": tmp_path / "empty.txt", "comments-list": tmp_path / "comments.txt",
            "not-a-video": tmp_path / "clip.mp4"}[source]
    if source == "empty-folder":
        path.mkdir()
    elif source == "empty-list":
        path.write_text("")
    elif source == "comments-list":
        path.write_text("# calibration images\n\n")
    elif source == "not-a-video":
        path.write_bytes(random_bytes(2000))
    completed = run_cli("calibrate", model, "--images", path, "--no-accuracy")
    assert_one_line_error(completed, path.name)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(
        [model.name] + ([path.name] if path.is_file() else []))
