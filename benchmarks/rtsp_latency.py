#!/usr/bin/env python3
"""Glass-to-glass latency of an RTSP camera on loopback, GStreamer vs FFmpeg, before and after a reconnect.

A GStreamer RTSP server on 127.0.0.1 (tests/system/rtsp_server.py ``--stamp``, run by the
system Python: gst-rtsp-server, x264enc ``tune=zerolatency``, H.264 at 30 FPS) paints the
wall-clock time into each frame as it is pushed into the encoder.  fcn-edge reads the stream
as ``fcn-edge run`` does (a :class:`~fcn_edge.stream.FrameFeed` over the ``rtsp://`` source,
latest-frame policy, reconnects) with each backend in turn:

* ``gstreamer``: ``rtspsrc latency=0 ... ! decodebin ! ... ! appsink drop=true max-buffers=1``
  (what ``--rtsp-backend auto`` picks where OpenCV has GStreamer: the system OpenCV);
* ``ffmpeg``: OpenCV's FFmpeg backend over TCP (what a pip OpenCV gives).

Latency = the time a frame is handed to inference minus the stamp decoded from its pixels
(both clocks are this machine's), i.e. encode + RTP/RTSP + jitter buffer + decode + colour
conversion + the feed's hand-off.  Each backend: ``--seconds`` of steady streaming, then
the server is stopped for ``--down`` seconds and started again on the same port, then
``--seconds`` more after the reconnect, to show the latency comes back to its level.

Run it with a Python whose OpenCV has both backends (the robot venv of README's Jetson/ROS
section, e.g. ``python3 -m venv --system-site-packages v && v/bin/pip install '.[onnx]'``)::

    flock /tmp/fcn-edge-bench.lock v/bin/python benchmarks/rtsp_latency.py [--seconds 8] [--down 3]

Writes benchmarks/results/rtsp_latency.json (with the machine description).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._machine import write_result  # noqa: E402
from fcn_edge.stream import FrameFeed, ReconnectPolicy, SourceOptions, create_source, parse_source  # noqa: E402
from fcn_edge.serve.environment import free_port  # noqa: E402
from fcn_edge.stream.sources import has_gstreamer  # noqa: E402
from tests.system.rtsp_server import decode_stamp  # noqa: E402

SERVER = ROOT / "tests" / "system" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
RESULTS_TITLE = "RTSP glass-to-glass latency on loopback (`benchmarks/rtsp_latency.py`)"


def start_server(port: int, width: int, height: int, fps: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    server = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(port), "--stamp", "--width", str(width),
                               "--height", str(height), "--fps", str(fps)], stdout=subprocess.PIPE, text=True,
                              env=env, cwd="/")
    line = server.stdout.readline()
    if not line.startswith("ready"):
        raise SystemExit(f"the RTSP server did not start: {line!r}")
    return server


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def collect(feed: FrameFeed, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) of the frames handed out during ``seconds``, and how many stamps were unreadable."""
    latencies, unreadable = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = feed.get(timeout=0.5)
        if frame is None:
            continue
        handed = time.time()
        latency_ms = (handed - decode_stamp(frame.image) / 1e6) * 1000.0
        if 0.0 < latency_ms < 10_000.0:
            latencies.append(latency_ms)
        else:
            unreadable += 1
    return latencies, unreadable


def summary(latencies: list[float], unreadable: int, seconds: float) -> dict:
    values = np.asarray(latencies, np.float64)
    if values.size == 0:
        return {"frames": 0, "unreadable_stamps": unreadable}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"frames": int(values.size), "fps": round(values.size / seconds, 1), "unreadable_stamps": unreadable,
            "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1),
            "mean_ms": round(float(values.mean()), 1), "max_ms": round(float(values.max()), 1)}


def measure(backend: str, args: argparse.Namespace) -> dict:
    port = free_port()
    server = start_server(port, args.width, args.height, args.fps)
    spec = parse_source(f"rtsp://127.0.0.1:{port}/test")
    options = SourceOptions(rtsp_backend=backend, read_timeout=2.0)
    feed = FrameFeed(lambda: create_source(spec, options), policy="latest", live=True,
                     reconnect=ReconnectPolicy(max_attempts=None, initial_delay=0.2, stall_timeout=2.0),
                     name=spec.display_name)
    try:
        feed.start()
        collect(feed, 1.0)  # the first second: decoder start-up, not steady latency
        steady = collect(feed, args.seconds)
        stop_server(server)
        down_started = time.monotonic()
        time.sleep(args.down)
        server = start_server(port, args.width, args.height, args.fps)
        while feed.reconnects == 0 and time.monotonic() - down_started < args.down + 60:
            time.sleep(0.05)
        back_after = time.monotonic() - down_started
        collect(feed, 1.0)
        after = collect(feed, args.seconds)
    finally:
        feed.stop()
        feed.join()
        stop_server(server)
    return {"backend": feed.source_info.get("backend"), "steady": summary(*steady, args.seconds),
            "after_reconnect": summary(*after, args.seconds), "reconnects": feed.reconnects,
            "failed_reconnect_attempts": feed.failed_attempts, "frames_back_after_s": round(back_after, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per phase (default 8)")
    parser.add_argument("--down", type=float, default=3.0, help="seconds the server stays stopped (default 3)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)

    import cv2

    backends = ["gstreamer", "ffmpeg"] if has_gstreamer() else ["ffmpeg"]
    results = {}
    for backend in backends:
        results[backend] = measure(backend, args)
        print(backend, results[backend], flush=True)
    payload = {
        "command": "flock /tmp/fcn-edge-bench.lock v/bin/python benchmarks/rtsp_latency.py "
                   f"--seconds {args.seconds:g} --down {args.down:g}",
        "note": "shared 2-core machine; loopback RTSP, server and reader on the same host",
        "opencv": {"version": cv2.__version__, "path": cv2.__file__},
        "stream": {"codec": "H.264 (x264enc tune=zerolatency speed-preset=ultrafast)", "width": args.width,
                   "height": args.height, "fps": args.fps, "transport": "tcp"},
        "seconds_per_phase": args.seconds, "server_down_s": args.down,
        "backends": results,
    }
    if "gstreamer" not in results:
        payload["gstreamer_missing"] = f"this OpenCV ({cv2.__file__}) has no GStreamer backend"
    print(write_result("rtsp_latency", payload, args.out))
    return 0


def results_markdown(data: dict) -> list[str]:
    stream = data.get("stream") or {}
    rows = []
    for backend, result in (data.get("backends") or {}).items():
        for phase in ("steady", "after_reconnect"):
            figures = result.get(phase) or {}
            rows.append([backend, phase.replace("_", " "), figures.get("frames"), figures.get("fps"),
                         figures.get("p50_ms"), figures.get("p95_ms"), figures.get("p99_ms"), figures.get("max_ms"),
                         result.get("frames_back_after_s") if phase == "after_reconnect" else None])
    head = (f"{stream.get('codec')}, {stream.get('width')}x{stream.get('height')} at {stream.get('fps')} FPS over "
            f"RTSP/{stream.get('transport')} on 127.0.0.1; OpenCV {(data.get('opencv') or {}).get('version')}; "
            f"server stopped {data.get('server_down_s')} s between the phases. Latency: frame handed to inference "
            "minus the send time painted into it.")
    lines = [head, ""]
    lines += ["| backend | phase | frames | FPS | p50 ms | p95 ms | p99 ms | max ms | frames back after (s) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return lines


if __name__ == "__main__":
    sys.exit(main())
