"""``fcn-edge ros2``: run the segmentation node until SIGINT/SIGTERM.

Each option is also a ROS parameter of the same name (``--publish overlay`` is
``publish_overlay``; not ``--shm-only``, which must act before ROS starts); ``--ros-args`` and everything after it goes to ROS unchanged
(``-p name:=value`` overrides, ``-r`` remaps, ``__node:=``, ``__ns:=``).  SIGINT and
SIGTERM stop the node: the frame in hand is not published, the process exits 0 within a
few seconds.  Standard library only at import (``fcn-edge --help`` stays instant).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import signal
import threading
from typing import Any, Dict, List

from fcn_edge.errors import MissingDependencyError

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("class_mask", "color_mask", "overlay", "confidence")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ros2", help="ROS 2 node: images in, class masks / overlay / diagnostics out",
        description="Run the fcn_edge ROS 2 node: subscribe 'image' (or 'image/compressed', or capture --source), "
                    "publish fcn_edge/class_mask, color_mask, overlay, confidence (each when subscribed), "
                    "fcn_edge/class_info (transient local) and /diagnostics.  Every option is also a ROS parameter; "
                    "put ROS arguments after --ros-args.")
    parser.add_argument("model", nargs="?", help="model file (.onnx, .engine, .pt); or --ros-args -p model:=PATH")
    parser.add_argument("--backend", help="runtime backend (default: by the model's suffix)")
    parser.add_argument("--size", help="network input HxW for models that accept several sizes")
    parser.add_argument("--compressed", action="store_true", default=None,
                        help="subscribe image/compressed (sensor_msgs/CompressedImage, jpeg/png)")
    parser.add_argument("--source", help="capture this source directly (csi://0, /dev/video0, rtsp://...) "
                        "instead of subscribing; the frame never crosses ROS")
    parser.add_argument("--loop", action="store_true", default=None,
                        help="with --source: replay a video file or image folder forever")
    parser.add_argument("--frame-id", dest="frame_id", help="frame_id of the outputs with --source (default camera)")
    parser.add_argument("--qos", choices=("sensor_data", "reliable"),
                        help="input QoS: sensor_data (best effort, keep last 1; default) or reliable (bag playback)")
    parser.add_argument("--publish", action="append", choices=OUTPUT_NAMES, default=[],
                        help="compute this output even without subscribers (repeatable)")
    parser.add_argument("--overlay-alpha", dest="overlay_alpha", type=float, help="overlay colour weight 0..1")
    parser.add_argument("--diagnostics-period", dest="diagnostics_period", type=float,
                        help="seconds between /diagnostics messages (default 1)")
    parser.add_argument("--shm-only", action="store_true",
                        help="machine-local DDS: use the shipped Fast DDS shared-memory-only profile "
                             "(no UDP socket; only processes on this machine that use it too can talk to the node)")
    parser.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=None,
                        help="ROS arguments (-p name:=value, -r from:=to, ...): everything after goes to ROS")
    parser.set_defaults(func=main)


def settings_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The options the user gave, as parameter defaults (unset ones keep the node's defaults)."""
    names = ("backend", "size", "compressed", "source", "loop", "frame_id", "qos", "overlay_alpha",
             "diagnostics_period")
    settings = {name: getattr(args, name, None) for name in names}
    for name in args.publish or ():
        settings[f"publish_{name}"] = True
    return {k: v for k, v in settings.items() if v is not None}


def import_rclpy() -> Any:
    """rclpy, or one sentence on what is missing (including the PyPI wheels' library path)."""
    from fcn_edge.lazy import require
    from fcn_edge.ros2.environment import wheel_library_dirs

    try:
        return require("rclpy", purpose="to run fcn-edge ros2")
    except MissingDependencyError as exc:
        libs = wheel_library_dirs()
        if libs and ".so" in str(exc):
            raise MissingDependencyError(
                "the ROS 2 wheels are installed but their libraries are not on LD_LIBRARY_PATH: run fcn-edge "
                "with this venv's python (its ros-wheels-bootstrapper sets it) or "
                f"export LD_LIBRARY_PATH={os.pathsep.join(libs)}") from None
        raise


class StopFlag:
    """SIGINT/SIGTERM set a flag the spin loop checks: no exception lands inside a callback."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""
        self._previous: Dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def init_rclpy(rclpy: Any, ros_args: List[str]) -> None:
    """rclpy.init without its own signal handlers (ours stop the loop cleanly), where this rclpy can."""
    argv = ["fcn-edge", "--ros-args", *ros_args] if ros_args else ["fcn-edge"]
    kwargs: Dict[str, Any] = {"args": argv}
    if "signal_handler_options" in inspect.signature(rclpy.init).parameters:
        from rclpy.signals import SignalHandlerOptions

        kwargs["signal_handler_options"] = SignalHandlerOptions.NO
    rclpy.init(**kwargs)


def main(args: argparse.Namespace) -> int:
    if args.shm_only:
        from fcn_edge.ros2.environment import UDP_FORCING_VARIABLES, local_ros_environment

        env = local_ros_environment()
        for name in UDP_FORCING_VARIABLES + ("FASTDDS_BUILTIN_TRANSPORTS",):
            os.environ.pop(name, None)
        for name in ("RMW_IMPLEMENTATION", "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
            os.environ[name] = env[name]  # read when the first DDS participant is made, after this
    rclpy = import_rclpy()
    stop = StopFlag()
    stop.install()
    try:
        init_rclpy(rclpy, list(args.ros_args or []))
        try:
            return spin_node(rclpy, args, stop)
        finally:
            rclpy.try_shutdown()
    finally:
        stop.restore()


def spin_node(rclpy: Any, args: argparse.Namespace, stop: StopFlag) -> int:
    from rclpy.executors import SingleThreadedExecutor

    from fcn_edge.ros2.node import SegmentationNode

    node = SegmentationNode(model=args.model, **settings_from_args(args))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while (not stop.event.is_set() and rclpy.ok() and not node.capture_finished.is_set()
               and node.worker_error is None):
            executor.spin_once(timeout_sec=0.1)
    finally:
        if stop.signal_name:
            reason = stop.signal_name
        elif node.worker_error is not None:
            reason = "inference failed" if not node.settings["source"] else "source failed"
        else:
            reason = "source ended" if node.capture_finished.is_set() else "ROS shutdown"
        node.get_logger().info(f"stopping ({reason}): {node.stats.processed} frames segmented, "
                               f"{node.stats.dropped} dropped, {node.stats.bad} unusable")
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()
    if node.worker_error is not None:  # e.g. a --source that cannot be opened: one line, non-zero exit
        raise node.worker_error
    return 0

