"""Making and reading bags for the bag/Foxglove tests, with two independent libraries.

Bags are written with rosbags (rosbag2 folders, MCAP or sqlite3) or with the mcap
library's ROS 2 writer (``mcap-ros2-support``, as ``ros2 bag record``'s MCAP plugin
writes: chunked, zstd), and outputs are read back with the *other* library, so a
mistake shared by our writer and its reader cannot pass unnoticed.  The message
definitions below are the standard ROS 2 text, spelled out here rather than taken
from rosbags' type store.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

_DEPS = """================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""
IMAGE_MSGDEF = ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
                "uint32 step\nuint8[] data\n" + _DEPS)
COMPRESSED_MSGDEF = "std_msgs/Header header\nstring format\nuint8[] data\n" + _DEPS
STRING_MSGDEF = "string data\n"

T0 = 1_700_000_000_000_000_000  # a recorded robot clock (2023), far from "now"


def make_frames(count: int, size=(48, 80)) -> list[np.ndarray]:
    """Distinct BGR frames with structure (so a random tiny model labels them differently)."""
    rng = np.random.default_rng(7)
    frames = []
    for i in range(count):
        base = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        frame = cv2.resize(base, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        cv2.circle(frame, (10 + 7 * i % size[1], size[0] // 2), 9, (255, 255 - 20 * i % 256, 0), -1)
        frames.append(frame)
    return frames


def stamps(count: int, period_ns: int = 100_000_000) -> list[int]:
    return [T0 + i * period_ns + 123 for i in range(count)]


def raw_fields(frame: np.ndarray, encoding: str, pad: int = 0) -> tuple[int, bytes]:
    """(step, data) of a BGR frame in ``encoding`` with ``pad`` bytes of padding per row."""
    convert = {"bgr8": None, "rgb8": cv2.COLOR_BGR2RGB, "bgra8": cv2.COLOR_BGR2BGRA, "rgba8": cv2.COLOR_BGR2RGBA,
               "mono8": cv2.COLOR_BGR2GRAY}[encoding]
    pixels = frame if convert is None else cv2.cvtColor(frame, convert)
    rows = pixels.reshape(pixels.shape[0], -1)
    if pad:
        rows = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return rows.shape[1], np.ascontiguousarray(rows).tobytes()


def expected_bgr(frame: np.ndarray, encoding: str) -> np.ndarray:
    """What a reader should get back from ``frame`` stored in ``encoding`` (mono8 loses colour)."""
    if encoding == "mono8":
        return cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return frame


def write_rosbags(path: Path, frames, *, storage: str = "mcap", topic: str = "/camera/image_raw",
                  kind: str = "raw", encoding: str = "bgr8", pad: int = 0, frame_id: str = "camera_optical",
                  extra_topics: dict | None = None, bad_encoding_at: int | None = None) -> list[int]:
    """A rosbag2 folder written with rosbags; returns the header stamps (ns)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    times = stamps(len(frames))
    msgtype = "sensor_msgs/msg/Image" if kind == "raw" else "sensor_msgs/msg/CompressedImage"
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, msgtype, typestore=store)
        others = {name: writer.add_connection(name, mt, typestore=store) for name, mt in (extra_topics or {}).items()}
        for i, (frame, stamp) in enumerate(zip(frames, times)):
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=frame_id)
            if kind == "raw":
                enc = "yuv422" if i == bad_encoding_at else encoding
                step, data = raw_fields(frame, encoding, pad)
                msg = types["sensor_msgs/msg/Image"](header=header, height=frame.shape[0], width=frame.shape[1],
                                                     encoding=enc, is_bigendian=0, step=step,
                                                     data=np.frombuffer(data, np.uint8))
            else:
                ok, png = cv2.imencode(".png", frame)
                msg = types["sensor_msgs/msg/CompressedImage"](header=header, format="png",
                                                               data=np.frombuffer(png.tobytes(), np.uint8))
            # log time a little after the stamp, as a recorder would
            writer.write(conn, stamp + 5_000_000, store.serialize_cdr(msg, msgtype))
            for name, other in others.items():
                text = types["std_msgs/msg/String"](data=f"note {i}")
                writer.write(other, stamp + 6_000_000, store.serialize_cdr(text, "std_msgs/msg/String"))
    return times


def write_mcap_ros2(path: Path, frames, *, topic: str = "/camera/image_raw", kind: str = "compressed",
                    encoding: str = "rgb8", frame_id: str = "camera_optical", chunk_size: int = 1024 * 1024,
                    image_format: str = "png") -> list[int]:
    """A .mcap file written with mcap-ros2-support (chunked, zstd); returns the header stamps (ns)."""
    from mcap_ros2.writer import Writer

    times = stamps(len(frames))
    with open(path, "wb") as handle:
        writer = Writer(handle, chunk_size=chunk_size)
        if kind == "raw":
            schema = writer.register_msgdef("sensor_msgs/msg/Image", IMAGE_MSGDEF)
        else:
            schema = writer.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_MSGDEF)
        for frame, stamp in zip(frames, times):
            header = {"stamp": {"sec": stamp // 10**9, "nanosec": stamp % 10**9}, "frame_id": frame_id}
            if kind == "raw":
                step, data = raw_fields(frame, encoding)
                message = {"header": header, "height": frame.shape[0], "width": frame.shape[1], "encoding": encoding,
                           "is_bigendian": 0, "step": step, "data": data}
            else:
                ok, encoded = cv2.imencode("." + image_format, frame)
                message = {"header": header, "format": image_format, "data": encoded.tobytes()}
            writer.write_message(topic, schema, message, log_time=stamp + 5_000_000)
        writer.finish()
    return times


def read_mcap_ros2(path: Path) -> dict[str, list]:
    """topic -> [(log_time, decoded message)] read with the mcap library and mcap-ros2-support's decoder."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out: dict[str, list] = {}
    with open(path, "rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            out.setdefault(channel.topic, []).append((message.log_time, schema.name, decoded))
    return out


def read_rosbags(path: Path) -> dict[str, list]:
    """topic -> [(log_time, msgtype, decoded message)] read with rosbags (folders, .mcap, .db3)."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append(
                (timestamp, connection.msgtype, store.deserialize_cdr(raw, connection.msgtype)))
    return out


def image_array(message) -> np.ndarray:
    """A decoded mono8/bgr8 Image message (either library's object) as an array, checking its fields agree."""
    data = np.frombuffer(bytes(message.data), np.uint8) if not isinstance(message.data, np.ndarray) else message.data
    channels = {"mono8": 1, "bgr8": 3}[message.encoding]
    assert message.step == message.width * channels
    assert data.size == message.height * message.step
    shape = (message.height, message.width) if channels == 1 else (message.height, message.width, 3)
    return data.reshape(shape)


def stamp_of(message) -> int:
    return int(message.header.stamp.sec) * 10**9 + int(message.header.stamp.nanosec)
