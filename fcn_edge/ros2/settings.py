"""The node's settings: each one a command-line option and a ROS parameter of the same name.

Kept free of ROS so ``fcn-edge ros2 --help`` and the tests can read them without rclpy.
Read-only parameters are fixed when the node starts (model, input, QoS); the others can
be changed at run time (``ros2 param set /fcn_edge publish_overlay true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

OUTPUTS = ("class_mask", "color_mask", "overlay", "confidence")
# output -> encoding it is published in
OUTPUT_ENCODINGS = {"class_mask": "mono8", "color_mask": "rgb8", "overlay": "bgr8", "confidence": "mono8"}
QOS_CHOICES = ("sensor_data", "reliable")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    read_only: bool
    description: str


SETTINGS: Tuple[Setting, ...] = (
    Setting("model", "", True, ".onnx / .engine / .pt model (or a registered URL such as triton://host/model)"),
    Setting("backend", "", True, "backend name; empty: chosen by the model's suffix"),
    Setting("size", "", True, "network input HxW for models that take several sizes; empty: the model's own"),
    Setting("compressed", False, True, "subscribe image/compressed (sensor_msgs/CompressedImage, jpeg/png) instead of image"),
    Setting("source", "", True, "capture this source directly (csi://0, /dev/video0, rtsp://...) instead of subscribing"),
    Setting("loop", False, True, "with source: replay a video file or image folder forever (demos, tests)"),
    Setting("frame_id", "camera", True, "frame_id of the outputs' headers when capturing with source"),
    Setting("qos", "sensor_data", True, "input QoS: sensor_data (best effort, keep last 1) or reliable (bag playback)"),
    Setting("publish_class_mask", False, False, "compute class_mask even without subscribers"),
    Setting("publish_color_mask", False, False, "compute color_mask even without subscribers"),
    Setting("publish_overlay", False, False, "compute overlay even without subscribers"),
    Setting("publish_confidence", False, False, "compute confidence even without subscribers"),
    Setting("overlay_alpha", 0.5, False, "weight of the class colours in overlay (0..1)"),
    Setting("diagnostics_period", 1.0, True, "seconds between /diagnostics messages"),
)


def default_settings() -> Dict[str, Any]:
    return {s.name: s.default for s in SETTINGS}


def read_only_names() -> List[str]:
    return [s.name for s in SETTINGS if s.read_only]
