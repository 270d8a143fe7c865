"""The ROS 2 side of tests/ros2: runs INSIDE a network namespace (``unshare -n``), never outside.

pytest (tests/ros2/conftest.py) starts this script once per session as
``unshare -n sh -c 'ip link set lo up && exec python scenario.py MODEL OUT VIDEO'`` with the
shared-memory-only Fast DDS environment.  It starts three real ``fcn-edge ros2`` nodes
(``/plain`` subscribing ``image``, ``/packed`` subscribing ``image/compressed``, ``/direct``
capturing a video itself with ``--source``) and a
test node publishing frames and recording what comes back, then stops the nodes with
SIGINT and SIGTERM.  Everything observed goes to ``OUT/report.json`` and arrays to
``OUT/*.npz``; the assertions are in test_node.py, on the pytest side.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from tests.ros2.frames import FRAME_SIZE, sent_frames  # noqa: E402

OUTPUTS = ("class_mask", "color_mask", "overlay", "confidence")
WAIT_S = 20.0  # a generous bound for anything to arrive on a loaded 2-core machine


def udp_sockets(pid: int) -> dict:
    """Sockets ``pid`` holds, and how many of them are UDP (this namespace's /proc/net/udp*)."""
    udp = set()
    for name in ("udp", "udp6", "udplite", "udplite6"):
        path = Path(f"/proc/{pid}/net/{name}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                udp.add(line.split()[9])
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[8:-1])
    return {"sockets": len(held), "udp": len(held & udp), "udp_in_namespace": len(udp)}


class Probe(Node):
    """The test's own node: publishes frames, records every output with its stamp."""

    def __init__(self) -> None:
        super().__init__("fcn_edge_test_probe")
        self.image_pub = self.create_publisher(Image, "/plain/image", 10)
        self.compressed_pub = self.create_publisher(CompressedImage, "/packed/image/compressed", 10)
        self.received = {ns: {name: [] for name in OUTPUTS} for ns in ("plain", "packed", "direct")}
        for ns in ("plain", "packed", "direct"):
            for name in (OUTPUTS if ns == "plain" else ("class_mask",)):  # others: nobody listens
                self.create_subscription(Image, f"/{ns}/fcn_edge/{name}",
                                         lambda msg, ns=ns, name=name: self.received[ns][name].append(msg), 10)
        self.diagnostics = []
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def spin_until(self, condition, timeout: float = WAIT_S) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            rclpy.spin_once(self, timeout_sec=0.05)
        return condition()

    def masks(self, ns: str = "plain") -> list:
        return self.received[ns]["class_mask"]


def image_msg(frame: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical") -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = frame.shape[:2]
    msg.encoding, msg.is_bigendian, msg.step = "bgr8", 0, frame.shape[1] * 3
    msg.data = frame.tobytes()
    return msg


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def as_array(msg) -> np.ndarray:
    channels = msg.step // msg.width
    data = np.frombuffer(bytes(msg.data), np.uint8)
    assert data.size == msg.step * msg.height, "half-made message"
    return data.reshape(msg.height, msg.width, channels).squeeze(-1) if channels == 1 else \
        data.reshape(msg.height, msg.width, channels)


def start_node(model: str, ns: str, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fcn_edge", "ros2", model, *extra,
                             "--ros-args", "-r", f"__ns:=/{ns}", "-p", "diagnostics_period:=0.5"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=str(REPO))


def set_parameter(probe: Probe, name: str, value: bool | str) -> dict:
    client = probe.create_client(SetParameters, "/plain/fcn_edge/set_parameters")
    if not probe.spin_until(lambda: client.service_is_ready()):
        return {"error": "set_parameters service not available"}
    if isinstance(value, bool):
        pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
    probe.spin_until(future.done)
    result = future.result().results[0]
    probe.destroy_client(client)
    return {"successful": bool(result.successful), "reason": result.reason}


def stop(process: subprocess.Popen, sig: int) -> dict:
    start = time.monotonic()
    process.send_signal(sig)
    try:
        rc = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        rc = process.wait()
        return {"rc": rc, "seconds": None, "killed": True}
    return {"rc": rc, "seconds": round(time.monotonic() - start, 3), "killed": False}


def main(model: str, out: Path, video: str) -> int:
    report: dict = {"outputs_half_made": 0}
    plain = start_node(model, "plain", out / "plain.log")
    packed = start_node(model, "packed", out / "packed.log", "--compressed")
    direct = start_node(model, "direct", out / "direct.log", "--source", video, "--loop", "--frame-id", "cam_direct")
    rclpy.init()
    probe = Probe()
    frames = sent_frames()
    try:
        ok = probe.spin_until(lambda: probe.image_pub.get_subscription_count() > 0
                              and probe.compressed_pub.get_subscription_count() > 0, timeout=60)
        report["nodes_subscribed"] = ok
        # 1. warm up until outputs flow (the node only works for outputs it sees subscribed)
        base = time.time_ns()
        warm = image_msg(frames[0], base)
        every_output = lambda: all(probe.received["plain"][n] for n in OUTPUTS)  # noqa: E731
        report["warmup"] = probe.spin_until(lambda: every_output() or probe.image_pub.publish(warm)
                                            or probe.spin_until(every_output, timeout=0.5), timeout=60)
        for name in OUTPUTS:
            probe.received["plain"][name].clear()

        # 2. frames one by one with distinct stamps: every output for each
        stamps = []
        for i, frame in enumerate(frames):
            stamp = base + (i + 1) * 1_000_000_007
            stamps.append(stamp)
            probe.image_pub.publish(image_msg(frame, stamp))
            probe.spin_until(lambda: all(any(stamp_of(m) == stamp for m in probe.received["plain"][n]) for n in OUTPUTS))
        arrays, answered = {}, []
        for name in OUTPUTS:
            for msg in probe.received["plain"][name]:
                if stamp_of(msg) in stamps:
                    i = stamps.index(stamp_of(msg))
                    arrays[f"{name}_{i}"] = as_array(msg)
                    answered.append({"output": name, "index": i, "frame_id": msg.header.frame_id,
                                     "encoding": msg.encoding, "height": msg.height, "width": msg.width,
                                     "stamp": stamp_of(msg)})
        np.savez(out / "ordered.npz", **arrays)
        report["ordered"] = {"stamps": stamps, "answered": answered}

        # 3. the node holds no UDP socket (SHM-only profile), in this namespace
        report["udp"] = {"plain": udp_sockets(plain.pid), "packed": udp_sockets(packed.pid),
                         "probe": udp_sockets(os.getpid())}

        # 4. a late subscriber gets class_info (transient local)
        infos = []
        probe.create_subscription(String, "/plain/fcn_edge/class_info", infos.append,
                                  QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                             durability=DurabilityPolicy.TRANSIENT_LOCAL))
        probe.spin_until(lambda: infos)
        report["class_info"] = json.loads(infos[0].data) if infos else None

        # 5. parameters: read-only refused, run-time ones accepted
        report["set_model"] = set_parameter(probe, "model", "other.onnx")
        report["set_publish_overlay"] = set_parameter(probe, "publish_overlay", True)

        # 6. a burst of 50 frames: a few masks, the newest among them
        probe.received["plain"]["class_mask"].clear()
        burst = [base + 100_000_000_000 + i * 1_000_000 for i in range(50)]
        for i, stamp in enumerate(burst):
            probe.image_pub.publish(image_msg(frames[i % len(frames)], stamp))
        probe.spin_until(lambda: any(stamp_of(m) == burst[-1] for m in probe.masks()))
        probe.spin_until(lambda: False, timeout=1.0)  # anything still on its way
        report["burst"] = {"sent": burst, "answered": [stamp_of(m) for m in probe.masks()]}

        # 7. bad messages: one unsupported encoding, one wrong length; then a good frame still works
        bad = image_msg(frames[0], base + 200_000_000_000)
        bad.encoding, bad.step = "16UC1", frames[0].shape[1] * 2
        bad.data = bytes(FRAME_SIZE[0] * bad.step)
        short = image_msg(frames[0], base + 201_000_000_000)
        short.data = bytes(100)
        def plain_bad_count() -> int:
            counts = [int(kv.value) for d in probe.diagnostics for s in d.status if s.name.startswith("/plain/")
                      for kv in s.values if kv.key == "bad_messages"]
            return max(counts, default=0)

        # each bad message is sent until the node has counted it (a message replaced in the
        # mailbox before the inference thread took it would be a drop, not a bad message)
        for count, msg in enumerate((bad, short), start=1):
            probe.spin_until(lambda: plain_bad_count() >= count or probe.image_pub.publish(msg)
                             or probe.spin_until(lambda: plain_bad_count() >= count, timeout=2.0))
        good = base + 202_000_000_000
        probe.image_pub.publish(image_msg(frames[1], good))
        report["after_bad"] = probe.spin_until(lambda: any(stamp_of(m) == good for m in probe.masks()))
        probe.diagnostics.clear()
        probe.spin_until(lambda: any(s.name.startswith("/plain/") or "plain" in s.name for d in probe.diagnostics
                                     for s in d.status), timeout=5)
        probe.spin_until(lambda: False, timeout=1.0)
        report["diagnostics"] = [{"name": s.name, "level": int.from_bytes(bytes(s.level), "little")
                                  if isinstance(s.level, (bytes, bytearray)) else int(s.level),
                                  "message": s.message, "hardware_id": s.hardware_id,
                                  "values": {kv.key: kv.value for kv in s.values}}
                                 for d in probe.diagnostics for s in d.status]

        # 8. compressed input (png: lossless, so labels can be compared exactly; and jpeg)
        import cv2

        packed_stamps = []
        for i, (fmt, ext) in enumerate((("png", ".png"), ("jpeg", ".jpg"))):
            msg = CompressedImage()
            stamp = base + 300_000_000_000 + i * 1_000_000_007
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.header.frame_id = "packed_cam"
            msg.format = fmt
            msg.data = cv2.imencode(ext, frames[2])[1].tobytes()
            packed_stamps.append(stamp)
            probe.spin_until(lambda: any(stamp_of(m) == stamp for m in probe.masks("packed"))
                             or probe.compressed_pub.publish(msg) or False, timeout=30)
        packed_arrays = {}
        for msg in probe.masks("packed"):
            if stamp_of(msg) in packed_stamps:
                packed_arrays[f"{packed_stamps.index(stamp_of(msg))}"] = as_array(msg)
                report.setdefault("packed_frame_ids", []).append(msg.header.frame_id)
        np.savez(out / "packed.npz", **packed_arrays)

        # 9. --source: the node captures the video itself
        probe.spin_until(lambda: len(probe.masks("direct")) >= 3)
        direct_masks = probe.masks("direct")[:3]
        np.savez(out / "direct.npz", *[as_array(m) for m in direct_masks])
        report["direct"] = [{"frame_id": m.header.frame_id, "stamp": stamp_of(m), "received": time.time_ns()}
                            for m in direct_masks]
        report["udp"]["direct"] = udp_sockets(direct.pid)

        for ns in ("plain", "packed", "direct"):
            for name in OUTPUTS:
                for msg in probe.received[ns][name]:
                    try:
                        as_array(msg)
                    except AssertionError:
                        report["outputs_half_made"] += 1
    finally:
        # 9. SIGINT / SIGTERM: exit 0
        report["sigint"] = stop(plain, signal.SIGINT)
        report["sigterm"] = stop(packed, signal.SIGTERM)
        report["sigint_direct"] = stop(direct, signal.SIGINT)
        probe.destroy_node()
        rclpy.try_shutdown()
        (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
