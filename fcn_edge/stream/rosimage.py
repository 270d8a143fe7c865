"""sensor_msgs/Image and sensor_msgs/CompressedImage <-> numpy, for plain message objects.

The functions take the message's fields (``encoding, height, width, step, data``;
``format, data`` for compressed images) rather than a message class, so the same code
serves rosbags' and mcap-ros2-support's decoded messages, rclpy's messages (through
:mod:`fcn_edge.ros2.conversions`) and anything else shaped like them.  Frames leave as BGR uint8 ``HxWx3``, the runner's layout.

Encodings read: ``bgr8``, ``rgb8``, ``bgra8``, ``rgba8``, ``mono8`` (rows may carry
padding: ``step`` > ``width * channels``).  Anything else raises :class:`BadFrame`,
which a source turns into a skipped, counted frame.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from fcn_edge.lazy import opencv
from fcn_edge.stream.sources import BadFrame

# encoding -> channels of 8-bit pixels
ENCODINGS = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1}
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


def _as_bytes_view(data: Any) -> np.ndarray:
    """The message's ``data`` as a flat uint8 array without a copy where it exposes a buffer.

    rclpy gives ``array.array('B')``, rosbags a numpy array, mcap-ros2-support ``bytes``; all
    of them have the buffer protocol.  A plain list (hand-made messages) is converted.
    """
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), np.uint8)
    except TypeError:  # no buffer protocol
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_bgr(encoding: str, height: int, width: int, step: int, data: Any) -> np.ndarray:
    """A raw sensor_msgs/Image's fields as a BGR uint8 ``HxWx3`` array (a new array, safe to keep).

    Raises :class:`BadFrame` for an encoding not in :data:`ENCODINGS`, a zero size, or
    data shorter than ``height * step``.
    """
    key = str(encoding).strip().lower()
    channels = ENCODINGS.get(key)
    if channels is None:
        raise BadFrame(f"image encoding {encoding!r} is not supported (expected one of {', '.join(ENCODINGS)})")
    height, width, step = int(height), int(width), int(step)
    if height < 1 or width < 1:
        raise BadFrame(f"image of size {width}x{height} is empty")
    row = width * channels
    if step < row:
        raise BadFrame(f"image step {step} is shorter than a row of {width} {encoding} pixels ({row} bytes)")
    flat = _as_bytes_view(data)
    if flat.size < height * step:
        raise BadFrame(f"image data has {flat.size} bytes, {height}x{step} = {height * step} expected")
    rows = flat[:height * step].reshape(height, step)[:, :row]
    pixels = rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)
    cv2 = opencv()
    if key == "bgr8":
        return np.array(pixels, dtype=np.uint8, order="C")  # a contiguous copy, never a view of the message
    code = {"rgb8": cv2.COLOR_RGB2BGR, "bgra8": cv2.COLOR_BGRA2BGR, "rgba8": cv2.COLOR_RGBA2BGR,
            "mono8": cv2.COLOR_GRAY2BGR}[key]
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def compressed_to_bgr(format: str, data: Any) -> np.ndarray:
    """A sensor_msgs/CompressedImage's fields (``format`` such as ``jpeg``, ``png`` or ``bgr8; jpeg compressed bgr8``)
    as a BGR uint8 ``HxWx3`` array; :class:`BadFrame` for another format or bytes that do not decode.

    An empty ``format`` is accepted (some drivers leave it blank): the bytes decide.
    """
    name = str(format or "").lower()
    # image_transport writes e.g. "bgr8; jpeg compressed bgr8"; plain drivers write "jpeg"
    if name and not any(known in name for known in COMPRESSED_FORMATS):
        raise BadFrame(f"unsupported compressed format {format!r}; expected jpeg or png")
    flat = _as_bytes_view(data)
    if flat.size == 0:
        raise BadFrame(f"compressed image ({format or 'no format'}) is empty")
    cv2 = opencv()
    image = cv2.imdecode(flat, cv2.IMREAD_COLOR)
    if image is None:
        raise BadFrame(f"compressed image ({format or 'no format'}, {flat.size} bytes) does not decode")
    return image


def confidence_to_mono8(confidence: np.ndarray) -> np.ndarray:
    """Probability (0..1 float) -> mono8, probability x 255 rounded."""
    return np.clip(np.rint(np.asarray(confidence, np.float32) * 255.0), 0, 255).astype(np.uint8)


def labels_to_mono8(labels: np.ndarray) -> np.ndarray:
    """Class ids -> mono8 (models with more than 256 classes are refused when the node starts)."""
    return np.ascontiguousarray(labels if labels.dtype == np.uint8 else labels.astype(np.uint8))


def bgr_to_image(image: np.ndarray, encoding: str = "bgr8") -> Tuple[str, int, int, int, bytes]:
    """A BGR (or, for ``mono8``, single-channel) uint8 array as ``(encoding, height, width, step, data)``."""
    cv2 = opencv()
    key = encoding.lower()
    if key not in ENCODINGS:
        raise ValueError(f"cannot write encoding {encoding!r}")
    array = np.asarray(image)
    if key == "mono8":
        if array.ndim == 3:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)
    elif key != "bgr8":
        code = {"rgb8": cv2.COLOR_BGR2RGB, "bgra8": cv2.COLOR_BGR2BGRA, "rgba8": cv2.COLOR_BGR2RGBA}[key]
        array = cv2.cvtColor(array, code)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape[:2]
    return key, int(height), int(width), int(width * ENCODINGS[key]), array.tobytes()


def encode_compressed(image: np.ndarray, format: str = "jpeg", quality: int = 90) -> bytes:
    """``image`` (BGR or mono) as JPEG or PNG bytes for a CompressedImage."""
    cv2 = opencv()
    key = format.lower()
    if key in ("jpeg", "jpg"):
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif key == "png":
        ok, encoded = cv2.imencode(".png", image)
    else:
        raise ValueError(f"cannot compress to {format!r} (jpeg or png)")
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {format}")
    return encoded.tobytes()


__all__ = ["ENCODINGS", "COMPRESSED_FORMATS", "image_to_bgr", "compressed_to_bgr", "bgr_to_image",
           "encode_compressed", "confidence_to_mono8", "labels_to_mono8"]
