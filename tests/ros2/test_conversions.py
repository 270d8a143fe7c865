"""sensor_msgs/Image <-> numpy: row padding, encodings, bad messages (no ROS context needed).

Each case runs on a plain stand-in object with the message's fields and, where the
ROS 2 message packages are installed, on the real sensor_msgs classes too.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from fcn_edge.ros2.conversions import (BadImage, compressed_to_bgr, confidence_to_mono8, fill_image, image_to_bgr,
                                       seconds_to_stamp, stamp_seconds)


def _plain_image():
    return SimpleNamespace(height=0, width=0, encoding="", is_bigendian=0, step=0, data=b"")


def _real_image():
    from sensor_msgs.msg import Image

    return Image()


MESSAGE_KINDS = [pytest.param(_plain_image, id="plain")]
if importlib.util.find_spec("sensor_msgs") is not None:
    MESSAGE_KINDS.append(pytest.param(_real_image, id="sensor_msgs"))


def _message(make, pixels: np.ndarray, encoding: str, pad: int = 0):
    """A message holding ``pixels`` with ``pad`` junk bytes after each row."""
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1)
    padded = np.concatenate([row, np.full((h, pad), 77, np.uint8)], axis=1)
    msg = make()
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = h, w, encoding, 0, row.shape[1] + pad
    msg.data = padded.tobytes()
    return msg


@pytest.fixture
def bgr():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("make", MESSAGE_KINDS)
@pytest.mark.parametrize("pad", [0, 3])
def test_encodings_to_bgr(make, pad, bgr):
    alpha = np.full(bgr.shape[:2] + (1,), 200, np.uint8)
    cases = {"bgr8": bgr, "rgb8": bgr[..., ::-1], "bgra8": np.concatenate([bgr, alpha], 2),
             "rgba8": np.concatenate([bgr[..., ::-1], alpha], 2)}
    for encoding, pixels in cases.items():
        out = image_to_bgr(_message(make, np.ascontiguousarray(pixels), encoding, pad))
        assert out.flags.c_contiguous and out.dtype == np.uint8
        np.testing.assert_array_equal(out, bgr, err_msg=encoding)
    gray = bgr[..., 0].copy()
    out = image_to_bgr(_message(make, gray, "mono8", pad))
    np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=2))


@pytest.mark.parametrize("make", MESSAGE_KINDS)
def test_bad_messages_raise_badimage(make, bgr):
    depth = _message(make, np.zeros((5, 14), np.uint8), "16UC1")
    with pytest.raises(BadImage, match="16UC1"):
        image_to_bgr(depth)
    short = _message(make, bgr, "bgr8")
    short.data = bytes(10)
    with pytest.raises(BadImage, match="10 bytes"):
        image_to_bgr(short)
    narrow = _message(make, bgr, "bgr8")
    narrow.step = 7 * 3 - 1
    with pytest.raises(BadImage, match="step"):
        image_to_bgr(narrow)
    empty = _message(make, bgr, "bgr8")
    empty.width = 0
    with pytest.raises(BadImage, match="empty"):
        image_to_bgr(empty)


@pytest.mark.parametrize("make", MESSAGE_KINDS)
def test_fill_image_round_trip(make, bgr):
    msg = fill_image(make(), bgr, "bgr8")
    assert (msg.height, msg.width, msg.step, msg.is_bigendian, msg.encoding) == (5, 7, 21, 0, "bgr8")
    np.testing.assert_array_equal(image_to_bgr(msg), bgr)
    mono = fill_image(make(), bgr[..., 1], "mono8")
    assert mono.step == 7 and bytes(mono.data) == np.ascontiguousarray(bgr[..., 1]).tobytes()
    with pytest.raises(ValueError):
        fill_image(make(), bgr, "mono8")
    with pytest.raises(ValueError):
        fill_image(make(), bgr.astype(np.uint16), "bgr8")


def test_compressed_png_jpeg_and_garbage(bgr):
    import cv2

    png = SimpleNamespace(format="png", data=cv2.imencode(".png", bgr)[1].tobytes())
    np.testing.assert_array_equal(compressed_to_bgr(png), bgr)
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (16, 1, 3))
    jpeg = SimpleNamespace(format="bgr8; jpeg compressed bgr8", data=cv2.imencode(".jpg", smooth)[1].tobytes())
    out = compressed_to_bgr(jpeg)
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).max() < 12
    with pytest.raises(BadImage, match="does not decode"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(BadImage, match="unsupported compressed format"):
        compressed_to_bgr(SimpleNamespace(format="tiff", data=b"II*"))
    with pytest.raises(BadImage, match="empty"):
        compressed_to_bgr(SimpleNamespace(format="png", data=b""))


def test_confidence_and_stamps():
    np.testing.assert_array_equal(confidence_to_mono8(np.array([0.0, 0.5, 1.0, 1.2], np.float32)), [0, 128, 255, 255])
    assert seconds_to_stamp(1700000000.25) == (1700000000, 250000000)
    assert seconds_to_stamp(5.9999999999) == (6, 0)
    assert stamp_seconds(SimpleNamespace(sec=3, nanosec=500000000)) == 3.5
