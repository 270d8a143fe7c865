"""Image and mask readers: conversions, palette indices, and one-line errors naming the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fcn_edge.data.imageio import (
    NOTE_16BIT,
    NOTE_ALPHA,
    NOTE_GRAYSCALE,
    check_labels,
    decode_mask,
    encode_palette_png,
    load_image,
    read_image,
    read_mask,
    read_palette,
    write_image,
    write_mask,
)
from fcn_edge.errors import DataError
from fcn_edge.artifacts.modelinfo import voc_palette
from tests.data.conftest import handmade_palette_png, random_mask, write_png


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_colour_image_comes_back_as_bgr_uint8(tmp_path, rng):
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", image)
    loaded = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(loaded.pixels, image)  # cv2.imwrite takes BGR; same order back
    assert loaded.notes == ()
    assert loaded.size == (20, 30)


def test_grayscale_is_expanded_with_a_note(tmp_path, rng):
    gray = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    write_png(tmp_path / "g.png", gray)
    loaded = load_image(tmp_path / "g.png")
    assert loaded.pixels.shape == (10, 12, 3) and loaded.pixels.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(loaded.pixels[:, :, c], gray)
    assert loaded.notes == (NOTE_GRAYSCALE,)


def test_rgba_drops_alpha_with_a_note(tmp_path, rng):
    bgra = rng.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    write_png(tmp_path / "a.png", bgra)
    loaded = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(loaded.pixels, bgra[:, :, :3])
    assert loaded.notes == (NOTE_ALPHA,)


def test_16bit_is_scaled_over_the_full_range(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    image16 = np.repeat(values[:, :, None], 3, axis=2)
    write_png(tmp_path / "d.png", image16)
    loaded = load_image(tmp_path / "d.png")
    assert loaded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(loaded.pixels[0, :, 1], [0, 1, 128, 255])
    assert NOTE_16BIT in loaded.notes
    write_png(tmp_path / "g16.png", values)  # 16-bit grayscale: both notes
    assert set(load_image(tmp_path / "g16.png").notes) == {NOTE_16BIT, NOTE_GRAYSCALE}


@pytest.mark.parametrize("content, needle", [
    (b"", "empty"),
    (b"this is not an image", "cannot be decoded"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot be decoded"),
])
def test_unreadable_images_name_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=needle) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="is a folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_truncated_files_are_errors(tmp_path, rng, extension):
    ok, data = cv2.imencode(extension, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    path = tmp_path / f"cut{extension}"
    path.write_bytes(data.tobytes()[: len(data) * 2 // 3])
    with pytest.raises(DataError, match="truncated|cannot be decoded") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_jpeg_truncation_check_walks_segments(tmp_path, rng):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    # data appended after the end (motion photos, trailers) is not truncation
    (tmp_path / "trailer.jpg").write_bytes(data + bytes(rng.integers(0, 256, 5000, dtype=np.uint8)))
    assert read_image(tmp_path / "trailer.jpg").shape == (32, 32, 3)
    # cut inside the headers, and just before the end marker
    for cut in (30, len(data) - 2):
        (tmp_path / "cut.jpg").write_bytes(data[:cut])
        with pytest.raises(DataError, match="truncated JPEG"):
            read_image(tmp_path / "cut.jpg")


def test_float_images_are_refused(tmp_path):
    ok, data = cv2.imencode(".tiff", np.zeros((4, 4), np.float32))
    (tmp_path / "f.tiff").write_bytes(data.tobytes())
    with pytest.raises(DataError, match="float32"):
        read_image(tmp_path / "f.tiff")


# ---------------------------------------------------------------- masks

def test_handmade_voc_palette_png_is_read_as_indices(tmp_path, rng):
    mask = random_mask(rng, (23, 31), 21)
    path = tmp_path / "voc.png"
    path.write_bytes(handmade_palette_png(mask, voc_palette(256), filters=(0, 1, 2)))
    # OpenCV alone expands the palette to colours: not what a label reader may return
    colours = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert colours.ndim == 3
    np.testing.assert_array_equal(read_mask(path, num_classes=21), mask)


def test_palette_png_with_duplicate_colours_transparency_and_4_bits(tmp_path, rng):
    mask = rng.integers(0, 16, (9, 13)).astype(np.uint8)
    palette = [(0, 0, 0)] * 16  # every index has the same colour: colours cannot tell them apart
    path = tmp_path / "p4.png"
    path.write_bytes(handmade_palette_png(mask, palette, bit_depth=4, filters=(1, 2, 0), transparency=b"\x00" * 16))
    np.testing.assert_array_equal(read_mask(path), mask)


def test_encoder_round_trip_and_voc_palette(tmp_path, rng):
    mask = random_mask(rng, (17, 19), 5)
    path = write_mask(tmp_path / "m.png", mask, voc_palette(5))
    np.testing.assert_array_equal(read_mask(path, num_classes=5), mask)
    palette = read_palette(path)
    assert len(palette) == 256 and palette[:5] == voc_palette(5) and palette[255] == (224, 224, 192)
    # any viewer (here OpenCV) shows the palette colours
    shown = cv2.imread(str(path))
    r, g, b = voc_palette(5)[int(mask[5, 5])]
    assert tuple(shown[5, 5]) == (b, g, r)
    assert encode_palette_png(mask, voc_palette(5)) == path.read_bytes()  # deterministic


def test_grayscale_index_png_and_16bit_mask(tmp_path, rng):
    mask = random_mask(rng, (12, 14), 6)
    write_png(tmp_path / "g.png", mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "g.png", num_classes=6), mask)
    write_png(tmp_path / "g16.png", mask.astype(np.uint16))
    np.testing.assert_array_equal(read_mask(tmp_path / "g16.png"), mask)
    write_png(tmp_path / "big16.png", np.full((3, 3), 300, np.uint16))
    with pytest.raises(DataError, match="300"):
        read_mask(tmp_path / "big16.png")


def test_out_of_range_labels_name_file_and_values(tmp_path):
    mask = np.zeros((6, 6), np.uint8)
    mask[0, 0], mask[1, 1], mask[2, 2] = 7, 9, 255
    path = write_mask(tmp_path / "m.png", mask)
    read_mask(path, num_classes=10)  # 255 is ignore, fine
    with pytest.raises(DataError) as info:
        read_mask(path, num_classes=5)
    message = str(info.value)
    assert str(path) in message
    # The temporary path itself may contain "255" (pytest-255), so judge the text without it.
    values_part = message.replace(str(path), "<path>").split("allowed")[0]
    assert "7, 9" in values_part and "255" not in values_part
    with pytest.raises(DataError, match="254"):
        check_labels(np.array([[254]], np.uint8), 21, name="x")


def test_colour_masks_need_a_palette(tmp_path, rng):
    mask = random_mask(rng, (10, 10), 4, ignore_border=False)
    palette = voc_palette(4)
    colour = np.array(palette, np.uint8)[mask][:, :, ::-1]  # BGR colour-coded mask
    write_png(tmp_path / "c.png", colour)
    with pytest.raises(DataError, match="colour image"):
        read_mask(tmp_path / "c.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "c.png", palette=palette), mask)
    with pytest.raises(DataError, match="not in the palette"):
        read_mask(tmp_path / "c.png", palette=palette[:2])


def test_jpeg_masks_are_refused(tmp_path):
    write_png(tmp_path / "m.jpg", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="JPEG"):
        read_mask(tmp_path / "m.jpg")


def test_truncated_palette_png(tmp_path, rng):
    data = handmade_palette_png(random_mask(rng, (20, 20), 3), voc_palette(256))
    for cut in (len(data) - 5, len(data) // 2, 40):
        with pytest.raises(DataError, match="truncated|cannot be decoded"):
            decode_mask(data[:cut], "cut.png")


def test_write_image_is_atomic_and_by_extension(tmp_path, rng):
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    write_image(tmp_path / "x.png", image)
    write_image(tmp_path / "x.jpg", image)
    np.testing.assert_array_equal(read_image(tmp_path / "x.png"), image)
    assert read_image(tmp_path / "x.jpg").shape == (8, 8, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg", "x.png"]


def test_package_imports_without_opencv_and_says_what_to_install(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT, cli_env

    code = (
        "import sys; sys.modules['cv2'] = None; sys.modules['torch'] = None; sys.modules['scipy'] = None\n"
        "import fcn_edge.data, fcn_edge.data.synth, fcn_edge.data.torch_adapter\n"
        "from fcn_edge.errors import MissingDependencyError\n"
        "try:\n"
        f"    fcn_edge.data.read_image({str(tmp_path / 'x.png')!r})\n"
        "except MissingDependencyError as exc:\n"
        "    print('MISSING:', exc)\n"
    )
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert "MISSING:" in done.stdout and "opencv" in done.stdout
