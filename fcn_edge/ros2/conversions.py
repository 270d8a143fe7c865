"""sensor_msgs/Image and CompressedImage messages <-> numpy, without importing ROS.

The functions take and fill any object with the messages' fields (``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``; ``format`` and ``data`` for
CompressedImage), so they work on rclpy's message classes and are unit-tested without a
ROS context.  Decoding is :mod:`fcn_edge.stream.rosimage`'s, the same code the bag source
uses, so a frame read live and the same frame read from a recording give the same pixels.
It honours ``step`` (rows padded past ``width * channels``) and refuses anything it cannot
read exactly with :class:`BadImage`; the node counts those and keeps running.
Multi-byte encodings (16UC1, 32FC1, ...) are not images a segmentation network takes, so
``is_bigendian`` never matters for what is read; what is written is 8-bit,
``is_bigendian = 0``.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from fcn_edge.stream import rosimage
from fcn_edge.stream.rosimage import confidence_to_mono8, labels_to_mono8  # re-exported for the node
from fcn_edge.stream.sources import BadFrame as BadImage  # one "unusable frame" error for every source


def image_to_bgr(msg: Any) -> np.ndarray:
    """An ``HxWx3`` uint8 BGR array from a sensor_msgs/Image (bgr8, rgb8, bgra8, rgba8, mono8)."""
    return rosimage.image_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def compressed_to_bgr(msg: Any) -> np.ndarray:
    """An ``HxWx3`` uint8 BGR array from a sensor_msgs/CompressedImage (JPEG or PNG)."""
    return rosimage.compressed_to_bgr(msg.format, msg.data)


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


__all__ = ["BadImage", "image_to_bgr", "compressed_to_bgr", "fill_image", "confidence_to_mono8", "labels_to_mono8",
           "stamp_seconds", "seconds_to_stamp"]
