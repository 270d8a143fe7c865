"""sensor_msgs/Image and CompressedImage <-> numpy, without importing ROS.

The functions take and fill any object with the messages' fields (``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``; ``format`` and ``data`` for
CompressedImage), so they work on rclpy's message classes and are unit-tested without a
ROS context.  Reading honours ``step`` (rows padded past ``width * channels`` by drivers
that align rows) and refuses anything it cannot read exactly with :class:`BadImage`; the
node counts those and keeps running.  Multi-byte encodings (16UC1, 32FC1, ...) are not
images a segmentation network takes, so ``is_bigendian`` never matters for what is read;
what is written is 8-bit, ``is_bigendian = 0``.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from fcn_edge.errors import FcnEdgeError

# encoding -> (channels, how to get BGR from it)
INPUT_ENCODINGS: Dict[str, int] = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1}
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


class BadImage(FcnEdgeError):
    """A message the node cannot read: unsupported encoding, wrong sizes, undecodable payload."""


def image_to_bgr(msg: Any) -> np.ndarray:
    """An ``HxWx3`` uint8 BGR array from a sensor_msgs/Image (bgr8, rgb8, bgra8, rgba8, mono8)."""
    encoding = str(msg.encoding).lower()
    channels = INPUT_ENCODINGS.get(encoding)
    if channels is None:
        raise BadImage(f"unsupported image encoding {msg.encoding!r}; send one of {', '.join(INPUT_ENCODINGS)}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row = width * channels
    if height <= 0 or width <= 0:
        raise BadImage(f"empty image ({width}x{height})")
    if step < row:
        raise BadImage(f"step {step} is shorter than a row of {width} {encoding} pixels ({row} bytes)")
    data = np.frombuffer(memoryview(msg.data).cast("B"), np.uint8)
    if data.size != step * height:
        raise BadImage(f"data holds {data.size} bytes, but {height} rows of step {step} need {step * height}")
    pixels = data.reshape(height, step)[:, :row].reshape(height, width, channels)
    return _to_bgr(pixels, encoding)


def _to_bgr(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """Channel order fixed to BGR (a contiguous copy: the message's buffer is not kept)."""
    if encoding == "bgr8":
        return np.ascontiguousarray(pixels)
    if encoding == "rgb8":
        return np.ascontiguousarray(pixels[..., ::-1])
    if encoding == "bgra8":
        return np.ascontiguousarray(pixels[..., :3])
    if encoding == "rgba8":
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))  # mono8


def compressed_to_bgr(msg: Any) -> np.ndarray:
    """An ``HxWx3`` uint8 BGR array from a sensor_msgs/CompressedImage (JPEG or PNG)."""
    from fcn_edge.lazy import opencv

    fmt = str(msg.format).lower()
    # image_transport writes e.g. "bgr8; jpeg compressed bgr8"; plain drivers write "jpeg"
    if fmt and not any(name in fmt for name in COMPRESSED_FORMATS):
        raise BadImage(f"unsupported compressed format {msg.format!r}; send jpeg or png")
    data = np.frombuffer(memoryview(msg.data).cast("B"), np.uint8)
    if data.size == 0:
        raise BadImage("empty compressed image")
    cv2 = opencv()
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise BadImage(f"the {msg.format or 'compressed'} payload ({data.size} bytes) does not decode")
    return image


def fill_image(msg: Any, array: np.ndarray, encoding: str) -> Any:
    """Set ``msg``'s image fields from an 8-bit ``HxW`` (mono8) or ``HxWx3`` (rgb8/bgr8) array."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{encoding} needs uint8 pixels, got {array.dtype}")
    channels = 1 if array.ndim == 2 else array.shape[2]
    expected = {"mono8": 1, "rgb8": 3, "bgr8": 3}[encoding]
    if channels != expected:
        raise ValueError(f"{encoding} needs {expected} channel(s), got shape {array.shape}")
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(array.shape[1]) * channels
    msg.data = array.tobytes()
    return msg


def confidence_to_mono8(confidence: np.ndarray) -> np.ndarray:
    """Probability (0..1 float) -> mono8, probability x 255 rounded."""
    return np.clip(np.rint(np.asarray(confidence, np.float32) * 255.0), 0, 255).astype(np.uint8)


def labels_to_mono8(labels: np.ndarray) -> np.ndarray:
    """Class ids -> mono8 (models with more than 256 classes are refused when the node starts)."""
    return np.ascontiguousarray(labels if labels.dtype == np.uint8 else labels.astype(np.uint8))


def stamp_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds as float."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def seconds_to_stamp(seconds: float) -> Tuple[int, int]:
    """Seconds since the epoch -> (sec, nanosec) as builtin_interfaces/Time wants them."""
    sec = int(seconds)
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return sec, nanosec
