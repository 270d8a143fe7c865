"""The ROS 2 segmentation node (``fcn-edge ros2``), usable as a class in robot code.

::

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from fcn_edge.ros2 import SegmentationNode

    rclpy.init()
    node = SegmentationNode(model="model.fp16.engine")
    executor = SingleThreadedExecutor()
    executor.add_node(node)            # next to the robot's own nodes
    executor.spin()
    node.destroy_node()                # stops the inference thread, closes the model

Threads.  Subscription callbacks (the executor's thread) only keep the newest message
in a one-slot mailbox; a thread of the node's own decodes it, runs the model and
publishes.  A message that arrives while the previous one waits replaces it (counted as
dropped), so no queue grows and the masks are always of the newest frame.  With
``source`` the node captures frames itself through the streaming runner (the frame never
crosses ROS) and publishes each result.

Outputs carry the input's header.  The inference is :class:`fcn_edge.Segmenter`'s, which
resizes exactly as ``fcn-edge run`` does, so the class masks equal the local runner's.
Only the rclpy API that Humble has too is used (Jetsons run Humble from apt).
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import require
from fcn_edge.ros2.conversions import (BadImage, compressed_to_bgr, confidence_to_mono8, fill_image, image_to_bgr,
                                       labels_to_mono8, seconds_to_stamp, stamp_seconds)
from fcn_edge.ros2.settings import OUTPUT_ENCODINGS, OUTPUTS, QOS_CHOICES, SETTINGS, default_settings

_PURPOSE = "to run the ROS 2 node"
rclpy = require("rclpy", purpose=_PURPOSE)
require("sensor_msgs.msg", purpose=_PURPOSE)
require("diagnostic_msgs.msg", purpose=_PURPOSE)
require("std_msgs.msg", purpose=_PURPOSE)

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult  # noqa: E402
from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from fcn_edge.stream.stats import LatencyRecorder  # noqa: E402

STAGES = ("decode", "inference", "encode", "total", "input_to_publish")
WARN_EVERY_S = 10.0


def input_qos(kind: str) -> QoSProfile:
    """sensor_data: best effort, keep last 1 (cameras); reliable: keep last 1 too, but nothing lost on the wire (bags)."""
    if kind not in QOS_CHOICES:
        raise FcnEdgeError(f"qos must be one of {', '.join(QOS_CHOICES)}, got {kind!r}")
    reliability = ReliabilityPolicy.BEST_EFFORT if kind == "sensor_data" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def output_qos() -> QoSProfile:
    """Reliable keep-last-1: matches best-effort and reliable subscribers, never queues old masks."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """Transient local: a subscriber that comes later still gets the last message (class_info)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class LatestSlot:
    """A one-item mailbox: ``put`` replaces what is there (returns True when it dropped one)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None

    def put(self, item: Any) -> bool:
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
        return dropped

    def take(self, timeout: float) -> Any:
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
        return item

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class NodeStats:
    """Counters and per-stage latencies: written by the inference thread, read by the diagnostics timer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.bad = 0
        self.idle = 0
        self.errors = 0
        self.window_start = time.monotonic()
        self.window_processed = 0
        self.window_bad = 0
        self.window: Dict[str, LatencyRecorder] = {}

    def record(self, timings: Dict[str, float]) -> None:
        with self.lock:
            self.processed += 1
            self.window_processed += 1
            for key, value in timings.items():
                self.window.setdefault(key, LatencyRecorder(2048)).add(value)

    def take_window(self) -> Tuple[float, int, int, Dict[str, LatencyRecorder], Dict[str, int]]:
        """The figures since the last call (and the running totals), then a fresh window."""
        with self.lock:
            now = time.monotonic()
            elapsed = max(now - self.window_start, 1e-9)
            window, processed, bad = self.window, self.window_processed, self.window_bad
            totals = {"received": self.received, "processed": self.processed, "dropped": self.dropped,
                      "bad_messages": self.bad, "skipped_no_subscriber": self.idle, "errors": self.errors}
            self.window, self.window_processed, self.window_bad, self.window_start = {}, 0, 0, now
        return elapsed, processed, bad, window, totals


class SegmentationNode(Node):
    """Subscribes images (or captures a source), publishes class/colour masks, overlay, confidence, diagnostics.

    ``model`` and the other keyword ``settings`` (names as in :mod:`fcn_edge.ros2.settings`)
    are the parameters' defaults; ``--ros-args -p name:=value`` (or a launch file's
    parameters) override them.  ``segmenter`` hands in an open :class:`fcn_edge.Segmenter`
    instead of opening ``model`` (the node then does not close it).
    """

    def __init__(self, model: Optional[str] = None, *, node_name: str = "fcn_edge", segmenter: Any = None,
                 node_kwargs: Optional[Dict[str, Any]] = None, **settings: Any) -> None:
        super().__init__(node_name, **(node_kwargs or {}))
        self._stopping = threading.Event()
        self.capture_finished = threading.Event()  # set when a --source stream ends (file played, source lost)
        self._slot = LatestSlot()
        self.stats = NodeStats()
        self._worker: Optional[threading.Thread] = None
        self.worker_error: Optional[BaseException] = None  # why the inference/capture thread ended, if it failed
        self._owns_segmenter = segmenter is None
        self._segmenter: Any = None
        self._last_warning = -math.inf
        self._warnings_held = 0
        try:
            self._declare(model, settings)
            self._segmenter = segmenter or self._open_model()
            self._check_model()
            self._make_publishers()
            self._make_input()
            self._start()
        except BaseException:
            self._close_model()
            super().destroy_node()
            raise

    # ------------------------------------------------------------------ setup
    def _declare(self, model: Optional[str], settings: Dict[str, Any]) -> None:
        unknown = set(settings) - {s.name for s in SETTINGS}
        if unknown:
            raise FcnEdgeError(f"unknown setting(s) {', '.join(sorted(unknown))}; known: "
                               f"{', '.join(s.name for s in SETTINGS)}")
        defaults = default_settings()
        defaults.update({k: v for k, v in settings.items() if v is not None})
        if model is not None:
            defaults["model"] = str(model)
        for setting in SETTINGS:
            descriptor = ParameterDescriptor(description=setting.description, read_only=setting.read_only)
            try:
                self.declare_parameter(setting.name, defaults[setting.name], descriptor)
            except ParameterException as exc:  # e.g. -p overlay_alpha:=1 (an integer for a double)
                kind = type(setting.default).__name__
                raise FcnEdgeError(f"parameter {setting.name}: {exc}; give a {kind} "
                                   f"(like {setting.name}:={json.dumps(setting.default)})") from None
        self.settings = {s.name: self.get_parameter(s.name).value for s in SETTINGS}
        problem = self._invalid(self.settings)
        if problem:
            raise FcnEdgeError(problem)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @staticmethod
    def _invalid(values: Dict[str, Any]) -> Optional[str]:
        """One sentence naming the bad parameter value, or None."""
        if not values.get("model"):
            return "no model given: fcn-edge ros2 MODEL, or --ros-args -p model:=path/to/model.onnx"
        if values.get("qos") not in QOS_CHOICES:
            return f"qos must be one of {', '.join(QOS_CHOICES)}, got {values.get('qos')!r}"
        alpha = values.get("overlay_alpha")
        if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            return f"overlay_alpha must be between 0 and 1, got {alpha!r}"
        period = values.get("diagnostics_period")
        if not isinstance(period, (int, float)) or not float(period) > 0:
            return f"diagnostics_period must be a positive number of seconds, got {period!r}"
        return None

    def _on_set_parameters(self, parameters: List[Any]) -> Any:
        """Validate run-time changes; read-only ones are refused by rclpy itself."""
        changed = dict(self.settings)
        changed.update({p.name: p.value for p in parameters})
        problem = self._invalid(changed)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        self.settings = changed
        return SetParametersResult(successful=True)

    def _open_model(self) -> Any:
        from fcn_edge.api import Segmenter
        from fcn_edge.artifacts.modelinfo import parse_size

        size_text = str(self.settings["size"]).strip()
        try:
            size = parse_size(size_text) if size_text else None
        except ValueError as exc:
            raise FcnEdgeError(f"size {size_text!r}: {exc}") from None
        return Segmenter.open(self.settings["model"], size=size, backend=self.settings["backend"] or None)

    def _check_model(self) -> None:
        if self._segmenter.info.num_classes > 256:
            raise FcnEdgeError(f"{self.settings['model']}: {self._segmenter.info.num_classes} classes do not fit "
                               "mono8 class masks (at most 256)")
        from fcn_edge.stream.visualize import Visualizer

        self._visualizer = Visualizer(self._segmenter.info)
        self._rgb_lut = np.ascontiguousarray(self._visualizer.lut[:, ::-1])

    def _make_publishers(self) -> None:
        self._output_pubs: Dict[str, Any] = {name: self.create_publisher(Image, f"fcn_edge/{name}", output_qos())
                                            for name in OUTPUTS}
        self._info_pub = self.create_publisher(String, "fcn_edge/class_info", latched_qos())
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._info_pub.publish(String(data=json.dumps(self.class_info(), default=str)))
        self._diag_timer = self.create_timer(float(self.settings["diagnostics_period"]), self._publish_diagnostics)

    def _make_input(self) -> None:
        self._input_sub = None
        if self.settings["source"]:
            self._input_name = str(self.settings["source"])
            return
        if self.settings["compressed"]:
            self._input_sub = self.create_subscription(CompressedImage, "image/compressed", self._on_message,
                                                          input_qos(self.settings["qos"]))
        else:
            self._input_sub = self.create_subscription(Image, "image", self._on_message,
                                                          input_qos(self.settings["qos"]))
        self._input_name = self._input_sub.topic_name

    def _start(self) -> None:
        target = self._capture_loop if self.settings["source"] else self._inference_loop
        self._worker = threading.Thread(target=self._guarded(target), name="fcn_edge_inference", daemon=True)
        self._worker.start()
        info = self._segmenter.info
        self.get_logger().info(
            f"model {Path(str(self.settings['model'])).name}: {info.num_classes} classes, "
            f"backend {self._segmenter.runner.backend}, network input {self._segmenter.network_size or 'per frame'}")
        self.get_logger().info(
            f"input {self._input_name} ({'capture' if self.settings['source'] else self.settings['qos']}); "
            f"outputs {', '.join(p.topic_name for p in self._output_pubs.values())} (computed when subscribed "
            f"or publish_<name>:=true); {self._info_pub.topic_name} (transient local); /diagnostics")

    def class_info(self) -> Dict[str, Any]:
        """What a robot needs to read the masks: class names, palette, model and export facts."""
        info = self._segmenter.info
        return {"class_names": list(info.class_names), "palette": [list(c) for c in info.palette],
                "num_classes": info.num_classes, "model": str(self.settings["model"]),
                "model_info": info.to_dict(), "runtime": self._segmenter.runner.describe(),
                "outputs": {f"fcn_edge/{name}": OUTPUT_ENCODINGS[name] for name in OUTPUTS},
                "confidence_available": self._has_confidence()}

    def _has_confidence(self) -> bool:
        names = [t.name for t in getattr(self._segmenter.io, "outputs", ())]
        return "confidence" in names or "logits" in names

    # ------------------------------------------------------------------ input
    def _on_message(self, msg: Any) -> None:
        """Executor thread: keep only the newest message; the inference thread takes it."""
        with self.stats.lock:
            self.stats.received += 1
        if self._slot.put(msg):
            with self.stats.lock:
                self.stats.dropped += 1

    def wanted_outputs(self) -> List[str]:
        """Outputs someone listens to, or that a parameter asks for: the only work done."""
        return [name for name in OUTPUTS
                if self.settings[f"publish_{name}"] or self._output_pubs[name].get_subscription_count() > 0]

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        """The thread's loop, keeping its error (``worker_error``) for the command to report."""
        def run() -> None:
            try:
                loop()
            except Exception as exc:  # noqa: BLE001 - the thread must say why it ended, not die silently
                self.worker_error = exc
                if not isinstance(exc, FcnEdgeError):
                    self.get_logger().error(f"inference stopped: {type(exc).__name__}: {exc}")
        return run

    def _inference_loop(self) -> None:
        decode = compressed_to_bgr if self.settings["compressed"] else image_to_bgr
        while not self._stopping.is_set():
            msg = self._slot.take(timeout=0.2)
            if msg is None or self._stopping.is_set():
                continue
            wanted = self.wanted_outputs()
            if not wanted:
                with self.stats.lock:
                    self.stats.idle += 1
                continue
            start = time.perf_counter()
            try:
                frame = decode(msg)
            except BadImage as exc:
                self._bad_message(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. an OpenCV error on a hostile payload: still a bad message
                self._bad_message(BadImage(f"the message cannot be read ({type(exc).__name__}: {exc})"))
                continue
            self._process(frame, msg.header, wanted, start, time.perf_counter())

    def _capture_loop(self) -> None:
        """With ``source``: the streaming runner captures (newest frame each time); each result is published."""
        try:
            self._publish_stream()
        except Exception as exc:
            # kept here, not only by _guarded: whoever waits on capture_finished (set below) reads it next
            self.worker_error = exc
            raise
        finally:
            self.capture_finished.set()
            if not self._stopping.is_set() and self.worker_error is None:
                self.get_logger().info(f"source {self.settings['source']} ended")

    def _publish_stream(self) -> None:
        header_frame = str(self.settings["frame_id"])
        # realtime: a file plays at its own frame rate with the latest-frame policy, like a camera
        stream = self._segmenter.stream(self.settings["source"], keep_frame=True, reconnect=None, realtime=True,
                                        loop=bool(self.settings["loop"]))
        for result in stream:
            if self._stopping.is_set():
                break
            wanted = self.wanted_outputs()
            if not wanted:
                with self.stats.lock:
                    self.stats.idle += 1
                continue
            header = Image().header
            header.stamp.sec, header.stamp.nanosec = seconds_to_stamp(result.wall_time or time.time())
            header.frame_id = header_frame
            # the stream's own figures up to here: capture -> labels at the frame's size
            before = {"inference": result.timings.get("inference"), "total": result.timings.get("end_to_end", 0.0)}
            self._publish_result(result, result.frame, header, wanted, time.perf_counter(), before)

    def _process(self, frame: np.ndarray, header: Any, wanted: List[str], start: float, decoded: float) -> None:
        try:
            result = self._segmenter.segment(frame)
        except FcnEdgeError as exc:
            self._bad_message(exc)
            return
        except Exception as exc:  # noqa: BLE001 - one failing frame must not end the node
            with self.stats.lock:
                self.stats.errors += 1
            self._warn(f"inference failed on a frame: {type(exc).__name__}: {exc}")
            return
        inferred = time.perf_counter()
        before = {"decode": (decoded - start) * 1000.0, "inference": (inferred - decoded) * 1000.0, "total": 0.0}
        self._publish_result(result, frame, header, wanted, start, before)

    def _publish_result(self, result: Any, frame: np.ndarray, header: Any, wanted: List[str], start: float,
                        before: Dict[str, Optional[float]]) -> None:
        """Build every wanted message completely, then publish them (nothing half-made on shutdown).

        ``before``: stage times (ms) already spent; ``total`` there is time spent before ``start``.
        """
        encode_start = time.perf_counter()
        mono = labels_to_mono8(result.labels)  # once: class_mask and color_mask both start from it
        messages = [(self._output_pubs[name], self._output_message(name, result, mono, frame, header))
                    for name in wanted]
        messages = [(pub, msg) for pub, msg in messages if msg is not None]
        if self._stopping.is_set():
            return
        for publisher, msg in messages:
            publisher.publish(msg)
        done = time.perf_counter()
        timings = {k: v for k, v in before.items() if v is not None}
        timings["encode"] = (done - encode_start) * 1000.0
        timings["total"] = (before.get("total") or 0.0) + (done - start) * 1000.0
        stamp = stamp_seconds(header.stamp)
        if stamp > 0:
            timings["input_to_publish"] = (self.get_clock().now().nanoseconds * 1e-9 - stamp) * 1000.0
        self.stats.record(timings)

    def _output_message(self, name: str, result: Any, mono: np.ndarray, frame: np.ndarray, header: Any) -> Any:
        msg = Image()
        msg.header = header
        if name == "class_mask":
            return fill_image(msg, mono, "mono8")
        if name == "color_mask":
            return fill_image(msg, self._rgb_lut[mono], "rgb8")
        if name == "overlay":
            return fill_image(msg, self._visualizer.overlay(frame, result.labels, float(self.settings["overlay_alpha"])),
                              "bgr8")
        if result.confidence is None:
            return None
        return fill_image(msg, confidence_to_mono8(result.confidence), "mono8")

    # --------------------------------------------------------------- warnings
    def _bad_message(self, exc: Exception) -> None:
        with self.stats.lock:
            self.stats.bad += 1
            self.stats.window_bad += 1
        self._warn(f"skipped a message: {exc}")

    def _warn(self, text: str) -> None:
        """One warning, then at most one every WARN_EVERY_S saying how many were held back."""
        now = time.monotonic()
        if now - self._last_warning < WARN_EVERY_S:
            self._warnings_held += 1
            return
        held = f" ({self._warnings_held} more since the last warning)" if self._warnings_held else ""
        self._last_warning, self._warnings_held = now, 0
        self.get_logger().warning(text + held)

    # ------------------------------------------------------------ diagnostics
    def diagnostics_message(self) -> Any:
        """DiagnosticArray: FPS, per-stage p50/p95/p99, input-to-publish latency, drops, backend, model."""
        elapsed, processed, bad, window, totals = self.stats.take_window()
        stream_stats = self._segmenter.last_stats if self.settings["source"] else None
        if stream_stats is not None:  # with source the streaming runner captures and drops
            totals["received"], totals["dropped"] = stream_stats.frames_captured, stream_stats.frames_dropped
        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name()}: segmentation"
        status.hardware_id = str(self._segmenter.runner.backend)
        fps = processed / elapsed
        values = [("fps", f"{fps:.2f}"), ("backend", str(self._segmenter.runner.backend)),
                  ("model", str(self.settings["model"])), ("input", self._input_name),
                  ("outputs_active", ",".join(self.wanted_outputs()))]
        values += [(name, str(value)) for name, value in totals.items()]
        for stage in STAGES:
            recorder = window.get(stage)
            if recorder is not None and recorder.count:
                p50, p95, p99 = recorder.percentiles((50, 95, 99))
                values += [(f"{stage}_ms_p50", f"{p50:.2f}"), (f"{stage}_ms_p95", f"{p95:.2f}"),
                           (f"{stage}_ms_p99", f"{p99:.2f}")]
        status.values = [KeyValue(key=k, value=v) for k, v in values]
        if bad:
            status.level, status.message = DiagnosticStatus.WARN, f"{bad} unusable message(s) in the last {elapsed:.1f} s"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"{fps:.1f} FPS"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        return array

    def _publish_diagnostics(self) -> None:
        if not self._stopping.is_set():
            self._diag_pub.publish(self.diagnostics_message())

    # --------------------------------------------------------------- lifetime
    def stop(self, timeout: float = 3.0) -> bool:
        """Stop the inference thread (after the frame in hand, which is then not published); True if it ended."""
        self._stopping.set()
        self._slot.wake()
        thread = self._worker
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _close_model(self) -> None:
        if self._owns_segmenter and self._segmenter is not None:
            self._segmenter.close()
        self._segmenter = None if self._owns_segmenter else self._segmenter

    def destroy_node(self) -> None:
        """Stop inference, close the model (when the node opened it), then destroy the ROS node."""
        ended = self.stop()
        if ended:
            self._close_model()  # a thread still inside the model keeps it; the process is ending anyway
        super().destroy_node()
