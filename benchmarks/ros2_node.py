#!/usr/bin/env python3
"""Latency the ROS 2 node (``fcn-edge ros2``) adds over ``fcn-edge run``, and the input rate it keeps.

Same model and frames on both sides: FCN-8s aligned, width 1/4, 21 classes, 128x128
network input (random weights), 480x640 bgr8 frames (a VGA camera).

* **Local runner**: ``Segmenter.segment`` on each frame, one at a time (what ``fcn-edge
  run`` does to a frame: resize, inference, labels back to 480x640; its streaming
  ``end_to_end`` on a folder would add the read-ahead queue's wait), alternating frame by
  frame with the node's measurement so both see the same machine load.
* **Node**: ``fcn-edge ros2`` in a subprocess and a probe node publishing the frames as
  sensor_msgs/Image (stamp = publish time) and subscribing ``fcn_edge/class_mask``;
  latency = mask received - stamp (the probe's clock), so it includes DDS both ways,
  decoding, inference, encoding.  Frames are sent one at a time (next after the answer).
* **Rate sweep**: frames sent at fixed rates for a few seconds each; per rate the share
  answered, latency p50/p95 in the first and second half (growing latency = a queue),
  and the highest rate answered (>= 95 %) without latency growing past 1.5x the
  one-at-a-time p50.  Above it the latest-frame policy drops frames instead of queueing.

Every ROS 2 process runs inside ``unshare -n`` (a network namespace with only loopback)
with the shared-memory-only Fast DDS profile (:mod:`fcn_edge.ros2.environment`).

Usage::

    python benchmarks/ros2_node.py [--frames 150] [--rates 5,10,20,30,45,60] [--seconds 4]

Writes benchmarks/results/ros2_node.json (with the machine description).
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FRAME_HW = (480, 640)
NETWORK_HW = (128, 128)


def percentiles(values: list) -> dict:
    """Latency summary as `fcn-edge bench` writes it (count, mean, p50/p95/p99, min, max), in ms to 2 decimals."""
    from fcn_edge.bench.stats import summarize

    return summarize(values, digits=2)


def make_frames(count: int) -> list:
    from tests.onnx_models import moving_frames

    return moving_frames(count, FRAME_HW, seed=1)


# ------------------------------------------------------------------ outside the namespace
LOCAL_WHAT = ("Segmenter.segment per frame (fcn-edge run's resize + inference + label resize), one at a time, "
              "in the probe process, alternating frame by frame with the node's measurement")


def run_inside(model: Path, out: Path, args: argparse.Namespace) -> dict:
    from fcn_edge.ros2.environment import local_ros_environment

    from benchmarks._models import child_env

    # child_env keeps an apt ROS's PYTHONPATH (rclpy from /opt/ros) behind this checkout
    env = local_ros_environment(child_env(), domain_id=random.SystemRandom().randint(1, 100))
    env["ROS_LOG_DIR"] = str(out / "ros_log")
    inner = [sys.executable, str(Path(__file__).resolve()), "--inside", str(model), str(out),
             "--frames", str(args.frames), "--rates", args.rates, "--seconds", str(args.seconds)]
    command = ["unshare", "-n", "sh", "-c", "ip link set lo up && exec " + " ".join(shlex.quote(c) for c in inner)]
    subprocess.run(command, env=env, check=True, timeout=900)
    return json.loads((out / "inside.json").read_text())


# ------------------------------------------------------------------- inside the namespace
def inside(model: str, out: Path, frames_count: int, rates: list, seconds: float) -> None:
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from fcn_edge.ros2.conversions import fill_image

    node = subprocess.Popen([sys.executable, "-m", "fcn_edge", "ros2", model], cwd=str(ROOT),
                            stdout=(out / "node.log").open("w"), stderr=subprocess.STDOUT)
    rclpy.init()
    probe = Node("bench_probe")
    pub = probe.create_publisher(Image, "image", 1)
    answers: dict = {}
    probe.create_subscription(Image, "fcn_edge/class_mask",
                              lambda m: answers.setdefault(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                                                           time.time_ns()), 1)
    messages = [fill_image(Image(), f, "bgr8") for f in make_frames(frames_count)]

    def send(i: int) -> int:
        msg = messages[i % len(messages)]
        stamp = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
        pub.publish(msg)
        return stamp

    def spin_for(condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not condition():
            rclpy.spin_once(probe, timeout_sec=0.002)
        return condition()

    try:
        spin_for(lambda: pub.get_subscription_count() > 0, 60)
        # warm up: until masks come back (the node works only for subscribed outputs)
        deadline = time.monotonic() + 60
        while not answers and time.monotonic() < deadline:
            send(0)
            spin_for(lambda: bool(answers), 0.5)
        for i in range(10):
            s = send(i)
            spin_for(lambda: s in answers, 10)
        # one at a time, interleaved with the local runner on the same frame (same load for both)
        from fcn_edge import Segmenter

        sequential, local = [], []
        with Segmenter.open(model) as seg:
            for i in range(10):
                seg.segment(make_frames(1)[0])
            frames = make_frames(frames_count)
            for i in range(frames_count):
                start = time.perf_counter()
                seg.segment(frames[i])
                local.append((time.perf_counter() - start) * 1000.0)
                s = send(i)
                if spin_for(lambda: s in answers, 10):
                    sequential.append((answers[s] - s) / 1e6)
        rows = []
        for rate in rates:
            sent = []
            start = time.monotonic()
            period = 1.0 / rate
            next_send = start
            while time.monotonic() - start < seconds:
                now = time.monotonic()
                if now >= next_send:
                    sent.append(send(len(sent)))
                    next_send += period
                rclpy.spin_once(probe, timeout_sec=max(0.0, min(0.002, next_send - time.monotonic())))
            spin_for(lambda: False, 0.5)
            half = len(sent) // 2
            lat = [(answers[s] - s) / 1e6 for s in sent if s in answers]
            first = [(answers[s] - s) / 1e6 for s in sent[:half] if s in answers]
            second = [(answers[s] - s) / 1e6 for s in sent[half:] if s in answers]
            rows.append({"rate_hz": rate, "sent": len(sent), "answered": len(lat),
                         "answered_share": round(len(lat) / max(1, len(sent)), 3),
                         "latency_ms": percentiles(lat), "first_half_ms": percentiles(first),
                         "second_half_ms": percentiles(second)})
            print(f"{rate:>5} Hz: answered {len(lat)}/{len(sent)}, p50 {rows[-1]['latency_ms'].get('p50')} ms, "
                  f"halves {rows[-1]['first_half_ms'].get('p50')} -> {rows[-1]['second_half_ms'].get('p50')}", flush=True)
    finally:
        node.send_signal(signal.SIGINT)
        rc = node.wait(timeout=30)
        probe.destroy_node()
        rclpy.try_shutdown()
    (out / "inside.json").write_text(json.dumps({"sequential_ms": percentiles(sequential), "rates": rows,
                                                 "local_runner": {"what": LOCAL_WHAT, "latency_ms": percentiles(local)},
                                                 "node_exit_code": rc, "node_log_tail": (out / "node.log").read_text()[-2000:]}))


def highest_kept_rate(rows: list, sequential_p50: float) -> float | None:
    """Highest rate answered >= 95 % whose p50 stays within 1.5x the one-at-a-time p50 in both halves."""
    kept = [r["rate_hz"] for r in rows
            if r["answered_share"] >= 0.95 and r["first_half_ms"].get("count") and r["second_half_ms"].get("count")
            and max(r["first_half_ms"]["p50"], r["second_half_ms"]["p50"]) <= 1.5 * sequential_p50]
    return max(kept) if kept else None


RESULTS_TITLE = "ROS 2 node (`fcn-edge ros2`) vs the local runner (`benchmarks/ros2_node.py`)"


def results_markdown(data: dict) -> list:
    """The RESULTS.md block (benchmarks/update_results.py)."""
    local, node = data["local_runner"]["latency_ms"], data["node"]["sequential_ms"]
    added = data["node_adds_ms"]
    lines = [f"FCN-8s width 1/4, 21 classes, {NETWORK_HW[0]}x{NETWORK_HW[1]} network input, "
             f"{FRAME_HW[0]}x{FRAME_HW[1]} bgr8 frames; ROS 2 Jazzy wheels, Fast DDS shared memory only, "
             "inside a network namespace; only class_mask subscribed.", "",
             "| path | latency p50 / p95 ms |", "| --- | --- |",
             f"| local runner (`Segmenter.segment`: `fcn-edge run`'s per-frame work) | {local['p50']:.1f} / {local['p95']:.1f} |",
             f"| `fcn-edge ros2` (publish -> class_mask received, one frame at a time) | {node['p50']:.1f} / {node['p95']:.1f} |",
             f"| added by the node | {added['p50']:+.1f} / {added['p95']:+.1f} |", "",
             "| input rate Hz | answered | latency p50 / p95 ms | p50 first -> second half |",
             "| --- | --- | --- | --- |"]
    for r in data["node"]["rates"]:
        lat = r["latency_ms"]
        lines.append(f"| {r['rate_hz']} | {r['answered']}/{r['sent']} | {lat.get('p50', '-')} / {lat.get('p95', '-')} | "
                     f"{r['first_half_ms'].get('p50', '-')} -> {r['second_half_ms'].get('p50', '-')} |")
    lines += ["", f"Highest input rate answered (>= 95 %) without latency growing: **{data['highest_kept_rate_hz']} Hz**; "
              "above it the latest-frame policy drops frames and latency stays flat instead of queueing."]
    return lines


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames sent one at a time (default 150)")
    parser.add_argument("--rates", default="5,10,20,30,45,60", help="input rates in Hz for the sweep")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per rate (default 4)")
    parser.add_argument("--name", default="ros2_node")
    parser.add_argument("--inside", nargs=2, metavar=("MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r]
    if args.inside:
        inside(args.inside[0], Path(args.inside[1]), args.frames, rates, args.seconds)
        return 0

    from benchmarks._machine import write_result
    from benchmarks._models import export_random_models, fcn8s_info

    with tempfile.TemporaryDirectory(prefix="fcn-edge-bench-") as tmp:
        tmp_path = Path(tmp)
        info = fcn8s_info(0.25, NETWORK_HW, 21)
        model = tmp_path / "ros2_bench.onnx"
        export_random_models(info, [(model, {"size": NETWORK_HW, "outputs": ["labels"]})])
        node = run_inside(model, tmp_path, args)
    local = node.pop("local_runner")
    print(f"local runner: p50 {local['latency_ms']['p50']} ms p95 {local['latency_ms']['p95']} ms", flush=True)
    seq = node["sequential_ms"]
    print(f"node, one at a time: p50 {seq['p50']} ms p95 {seq['p95']} ms", flush=True)
    payload = {
        "model": {"arch": "fcn8s", "width": 0.25, "classes": 21, "input_hw": list(NETWORK_HW)},
        "frames": {"hw": list(FRAME_HW), "encoding": "bgr8", "count": args.frames},
        "ros": {"distribution": "jazzy (PyPI wheels)", "rmw": "rmw_fastrtps_cpp",
                "transport": "Fast DDS shared memory only (fcn_edge/ros2/fastdds_shm_only.xml)",
                "isolation": "unshare -n (loopback only)"},
        "local_runner": local,
        "node": node,
        "node_adds_ms": {"p50": round(seq["p50"] - local["latency_ms"]["p50"], 2),
                         "p95": round(seq["p95"] - local["latency_ms"]["p95"], 2)},
        "highest_kept_rate_hz": highest_kept_rate(node["rates"], seq["p50"]),
        "note": "shared 2-core machine (other sessions may run beside it; the load average at the end is in the "
                "machine block); node, probe and DDS share the same cores",
        "command": "python benchmarks/ros2_node.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    path = write_result(args.name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
