#!/usr/bin/env python3
"""Publish class maps as mono8 images, the convention of ROS segmentation nodes.

A segmentation node usually publishes one ``sensor_msgs/Image`` per camera frame with
``encoding: mono8`` whose pixel values are class ids, stamped with the camera frame's
time, plus the class names somewhere (a parameter or a latched topic).  This example
builds exactly those messages from :class:`fcn_edge.Segmenter` results without making
ROS a dependency:

* with ROS 2 installed (``rclpy`` importable) and ``--ros``, it publishes real
  ``sensor_msgs/msg/Image`` messages on ``--topic``;
* otherwise it hands the same fields to a stand-in publisher that writes each class map
  as a mono8 PNG (``--out``) or just logs it, so the loop can be tried anywhere.

Usage::

    python examples/ros_mono8_publisher.py model.onnx --source 0 --out labels/
    python examples/ros_mono8_publisher.py model.fp16.engine --source csi://0 --ros --topic /segmentation/labels

The loop is the one a robot runs: newest camera frame -> labels -> publish, with the
latest-frame policy keeping latency flat when inference is slower than the camera.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger("mono8_publisher")


def mono8_message(labels: np.ndarray, stamp: float, frame_id: str = "camera") -> dict[str, Any]:
    """The fields of a ``sensor_msgs/Image`` holding class ids (``mono8``), as plain data.

    ``stamp`` is seconds since the epoch (split into sec/nanosec as ROS wants);
    ``step`` is the row length in bytes; ``data`` the row-major pixels.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels must be HxW, got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and int(labels.max()) > 255:
            raise ValueError("class ids above 255 need mono16")
        labels = labels.astype(np.uint8)
    labels = np.ascontiguousarray(labels)
    sec = int(stamp)
    return {
        "header": {"stamp": {"sec": sec, "nanosec": int(round((stamp - sec) * 1e9))}, "frame_id": frame_id},
        "height": int(labels.shape[0]),
        "width": int(labels.shape[1]),
        "encoding": "mono8",
        "is_bigendian": 0,
        "step": int(labels.shape[1]),
        "data": labels.tobytes(),
    }


def ros2_publisher(topic: str) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """A real ROS 2 publisher (needs rclpy and sensor_msgs)."""
    import rclpy  # type: ignore[import-not-found]
    from sensor_msgs.msg import Image  # type: ignore[import-not-found]

    rclpy.init()
    node = rclpy.create_node("fcn_edge_segmentation")
    publisher = node.create_publisher(Image, topic, 1)

    def publish(fields: dict[str, Any]) -> None:
        msg = Image()
        msg.header.stamp.sec = fields["header"]["stamp"]["sec"]
        msg.header.stamp.nanosec = fields["header"]["stamp"]["nanosec"]
        msg.header.frame_id = fields["header"]["frame_id"]
        msg.height, msg.width = fields["height"], fields["width"]
        msg.encoding, msg.is_bigendian, msg.step = fields["encoding"], fields["is_bigendian"], fields["step"]
        msg.data = fields["data"]
        publisher.publish(msg)

    def shutdown() -> None:
        node.destroy_node()
        rclpy.shutdown()

    return publish, shutdown


def file_publisher(folder: Path | None) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """Stand-in for a ROS publisher: mono8 PNGs named by stamp (or a log line per message)."""
    import cv2

    count = [0]
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)

    def publish(fields: dict[str, Any]) -> None:
        image = np.frombuffer(fields["data"], np.uint8).reshape(fields["height"], fields["step"])
        stamp = fields["header"]["stamp"]
        if folder is not None:
            cv2.imwrite(str(folder / f"{count[0]:06d}_{stamp['sec']}.{stamp['nanosec']:09d}.png"), image)
        else:
            log.info("mono8 %dx%d classes %s", fields["width"], fields["height"], np.unique(image).tolist())
        count[0] += 1

    return publish, lambda: None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help=".onnx, .engine or .pt model")
    parser.add_argument("--source", default="0", help="camera/stream/file, as for fcn-edge run")
    parser.add_argument("--ros", action="store_true", help="publish real sensor_msgs/Image with rclpy")
    parser.add_argument("--topic", default="/segmentation/labels")
    parser.add_argument("--frame-id", default="camera")
    parser.add_argument("--out", type=Path, help="without ROS: write mono8 PNGs here")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from fcn_edge import Segmenter

    publish, shutdown = ros2_publisher(args.topic) if args.ros else file_publisher(args.out)
    published = 0
    with Segmenter.open(args.model) as segmenter:
        # class names travel with the model: publish them once (a latched topic or parameter in ROS)
        log.info("classes: %s", json.dumps(segmenter.class_names))
        try:
            for result in segmenter.stream(args.source, max_frames=args.max_frames, keep_frame=False):
                publish(mono8_message(result.to_mono8(), result.wall_time or time.time(), args.frame_id))
                published += 1
        except KeyboardInterrupt:
            pass
        finally:
            shutdown()
    stats = segmenter.last_stats
    if stats is not None:
        log.info("published %d class maps; %s", published, stats.summary_lines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
