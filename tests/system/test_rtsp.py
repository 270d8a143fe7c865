"""RTSP for real: a GStreamer RTSP server on 127.0.0.1 (H.264 test pattern) read by ``fcn-edge run``.

The server (tests/system/rtsp_server.py, run by the system Python through gst-rtsp-server) is
stopped mid-stream and started again on the same port: the run counts the reconnect, frames
flow again, and SIGINT stops it cleanly with its stats.  Two backends:

* GStreamer (``rtspsrc latency=0``, newest frame only): the robot venv on the system OpenCV;
* FFmpeg: this test run's own Python, whose pip OpenCV has FFmpeg only (``--rtsp-backend auto``
  falls back to it), which is what a machine without a system OpenCV gets.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time

import pytest

from tests.conftest import cli_env
from tests.system.conftest import RunningProcess, clean_env, free_port, start_rtsp_server, stop

pytestmark = pytest.mark.slow

STATS_LINE = re.compile(r"^\s+(\d+(?:\.\d+)?) FPS \|")


def _flowing(line: str) -> bool:
    match = STATS_LINE.match(line)
    return bool(match) and float(match.group(1)) > 0


def _run_through_a_server_restart(command: list, env: dict, cwd, tmp_path) -> dict:
    """Start the server and the run, stop the server for 3 s, restart it, SIGINT the run; its stats JSON."""
    port = free_port()
    stats = tmp_path / "stats.json"
    url = f"rtsp://127.0.0.1:{port}/test"
    server = start_rtsp_server(port)
    run = RunningProcess([*command, "--source", url, "--sink", "none", "--stats-interval", "0.5",
                          "--reconnect", "inf", "--reconnect-delay", "0.2", "--stall-timeout", "2",
                          "--stats-json", stats], env=env, cwd=cwd)
    try:
        run.wait_for(_flowing, "frames before the server stops")
        stop(server)
        run.wait_for(lambda line: "reconnecting" in line, "the run to notice the server is gone")
        time.sleep(3)  # the server stays down for a few seconds (reconnect attempts fail meanwhile)
        server = start_rtsp_server(port)
        run.wait_for(lambda line: "reconnected" in line, "the reconnect once the server is back")
        run.wait_for(_flowing, "frames after the reconnect")
        run.signal(signal.SIGINT)
        code = run.finish(30)
    finally:
        run.kill()
        stop(server)
    output = "\n".join(run.lines)
    assert code == 0, output
    assert "SIGINT received: stopping" in output and "stopped: signal" in output, output
    return json.loads(stats.read_text())


def test_rtsp_through_gstreamer_reconnects_after_a_server_restart(robot_venv, tiny_onnx, tmp_path):
    data = _run_through_a_server_restart([robot_venv.fcn_edge, "run", tiny_onnx], clean_env(robot_venv.path),
                                         robot_venv.path, tmp_path)
    assert data["reconnects"] >= 1 and data["stop_reason"] == "signal"
    assert data["frames"]["processed"] > 0
    kinds = [event["kind"] for event in data["events"]]
    assert "reconnected" in kinds and kinds.index("reconnected") > kinds.index("lost")
    assert data["source"]["backend"] == "gstreamer", data["source"]  # read by rtspsrc, not FFmpeg


def test_rtsp_through_ffmpeg_reconnects_after_a_server_restart(system_python, tiny_onnx, tmp_path):
    import cv2

    from fcn_edge.stream.sources import has_gstreamer

    if has_gstreamer():
        pytest.skip(f"this Python's OpenCV ({cv2.__file__}) has GStreamer: auto would not use FFmpeg")
    data = _run_through_a_server_restart([sys.executable, "-m", "fcn_edge", "run", tiny_onnx], cli_env(), tmp_path,
                                         tmp_path)
    assert data["reconnects"] >= 1 and data["stop_reason"] == "signal"
    assert data["source"]["backend"] == "ffmpeg", data["source"]
