#!/usr/bin/env python3
"""Robot code that runs the fcn_edge segmentation node inside its own executor.

The node (:class:`fcn_edge.ros2.SegmentationNode`, what ``fcn-edge ros2`` runs) is an
ordinary rclpy node: add it to the executor that spins your other nodes.  Here the
"robot" is one node that publishes the frames of a video on ``image`` and reads the
class masks back from ``fcn_edge/class_mask`` (mono8, one class id per pixel, with the
frame's stamp), printing each class's share of the image.

Usage (any ROS 2 shell; with the PyPI wheels use this venv's python)::

    python examples/ros2_compose.py model.onnx video.mp4 --masks 20

For machine-local DDS (no network at all) first
``eval "$(python -m fcn_edge.ros2.environment --exports)"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help=".onnx, .engine or .pt model")
    parser.add_argument("video", help="video file whose frames the robot publishes")
    parser.add_argument("--masks", type=int, default=5, help="stop after this many class masks")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    args = parser.parse_args(argv)

    import cv2
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from fcn_edge.ros2 import SegmentationNode
    from fcn_edge.ros2.conversions import fill_image, image_to_bgr

    rclpy.init()
    segmentation = SegmentationNode(model=args.model)        # parameters as for fcn-edge ros2
    robot = rclpy.create_node("robot")
    camera = robot.create_publisher(Image, "image", 1)
    class_names = segmentation.class_info()["class_names"]
    masks = []

    def on_mask(msg: Image) -> None:
        labels = image_to_bgr(msg)[..., 0]                    # mono8 -> HxW class ids
        counts = np.bincount(labels.ravel(), minlength=len(class_names))
        shares = {class_names[i]: round(float(c) / labels.size, 3) for i, c in enumerate(counts) if c}
        masks.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
        print(json.dumps({"stamp": masks[-1], "frame_id": msg.header.frame_id, "size": [msg.height, msg.width],
                          "classes": shares}), flush=True)

    robot.create_subscription(Image, "fcn_edge/class_mask", on_mask, 1)
    executor = SingleThreadedExecutor()
    executor.add_node(segmentation)
    executor.add_node(robot)
    video = cv2.VideoCapture(args.video)
    deadline = time.monotonic() + args.timeout
    try:
        while len(masks) < args.masks and time.monotonic() < deadline:
            ok, frame = video.read()
            if not ok:
                video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            msg = fill_image(Image(), frame, "bgr8")
            msg.header.stamp = robot.get_clock().now().to_msg()
            msg.header.frame_id = "camera"
            camera.publish(msg)
            executor.spin_once(timeout_sec=0.05)
    finally:
        video.release()
        executor.shutdown()
        segmentation.destroy_node()
        robot.destroy_node()
        rclpy.try_shutdown()
    return 0 if len(masks) >= args.masks else 1


if __name__ == "__main__":
    sys.exit(main())
