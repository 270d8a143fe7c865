"""fcn-edge run as users call it: the Done-means command, signals, lost sources, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fcn_edge.data.synth import count_video_frames
from tests.conftest import assert_one_line_error, cli_env
from tests.onnx_models import write_images, write_video
from tests.stream.mjpeg_server import MjpegServer

STAT_FIELDS = ("latency_ms", "throughput_fps", "dropped_frames", "reconnects", "frames", "elapsed_s", "stop_reason")


def check_stats(data: dict) -> None:
    for field in STAT_FIELDS:
        assert field in data, field
    for stage in ("capture", "preprocess", "inference", "postprocess", "render", "end_to_end"):
        summary = data["latency_ms"][stage]
        assert summary["count"] > 0 and {"p50", "p95", "p99"} <= set(summary), stage


def test_done_means_command(run_cli, tiny_onnx, tmp_path):
    video = write_video(tmp_path / "video.mp4", 20)
    out, stats = tmp_path / "out.mp4", tmp_path / "s.json"
    completed = run_cli("run", tiny_onnx, "--source", video, "--sink", out, "--stats-json", stats, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert count_video_frames(out) == count_video_frames(video) == 20
    data = json.loads(stats.read_text())
    check_stats(data)
    assert data["frames"] == {"captured": 20, "processed": 20, "dropped": 0, "written": 20}
    assert data["stop_reason"] == "end-of-source" and data["reconnects"] == 0
    assert data["backend"]["backend"] == "onnxruntime" and data["source"]["policy"] == "every"
    assert "latency (ms)" in completed.stdout and "end_to_end" in completed.stdout


def start_run(args, tmp_path, own_group=False):
    process = subprocess.Popen([sys.executable, "-m", "fcn_edge", *map(str, args)], cwd=tmp_path, env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=own_group)
    lines = []

    def pump():
        for line in process.stderr:
            lines.append(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not any(line.startswith("running ") for line in lines):
        assert process.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)
    return process, lines, thread


@pytest.mark.parametrize("signum, to", [(signal.SIGINT, "group"), (signal.SIGTERM, "group"),
                                        (signal.SIGTERM, "process")])
def test_signal_stops_cleanly(tiny_onnx, tmp_path, signum, to):
    """To the process, or to its whole group as Ctrl-C in a terminal, timeout and systemd send it."""
    video = write_video(tmp_path / "video.mp4", 10)
    out, stats = tmp_path / "out.mp4", tmp_path / "s.json"
    process, lines, thread = start_run(["run", tiny_onnx, "--source", video, "--loop", "--sink", out,
                                        "--stats-json", stats, "--stats-interval", "0.2"], tmp_path,
                                       own_group=to == "group")
    time.sleep(1.0)
    if to == "group":
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    stdout = process.stdout.read()
    assert process.wait(timeout=60) == 0, "".join(lines)
    thread.join(5)
    data = json.loads(stats.read_text())
    check_stats(data)
    assert data["stop_reason"] == "signal"
    written = data["frames"]["written"]
    assert written > 10  # looped past the end of the file before the signal
    assert count_video_frames(out) == written  # finalised and playable
    assert "stopping" in "".join(lines) and "FPS" in "".join(lines)
    assert "frames:" in stdout
    assert not list(tmp_path.glob(".fcn-edge-tmp-*"))


def test_lost_live_source_exits_non_zero_with_outputs_and_stats(tiny_onnx, tmp_path):
    out, stats = tmp_path / "out.avi", tmp_path / "s.json"
    server = MjpegServer(fps=50, frames_per_connection=20).start()
    process, lines, thread = start_run(["run", tiny_onnx, "--source", server.url, "--sink", out, "--stats-json", stats,
                                        "--reconnect", "2", "--reconnect-delay", "0.05", "--stall-timeout", "1"],
                                       tmp_path)
    time.sleep(0.5)
    server.stop()
    assert process.wait(timeout=60) == 2, "".join(lines)
    thread.join(5)
    text = "".join(lines)
    assert "error:" in text and "reconnect attempt" in text and "Traceback" not in text
    data = json.loads(stats.read_text())
    assert data["stop_reason"] == "source-lost" and data["frames"]["processed"] > 0
    assert count_video_frames(out) == data["frames"]["written"]


def test_image_folder_to_labels_with_max_frames(run_cli, tiny_onnx, tmp_path):
    write_images(tmp_path / "in", 5)
    completed = run_cli("run", tiny_onnx, "--source", tmp_path / "in", "--sink", f"labels:{tmp_path / 'labels'}",
                        "--sink", tmp_path / "view", "--max-frames", "3", "--view", "side-by-side", "--legend")
    assert completed.returncode == 0, completed.stderr
    assert len(list((tmp_path / "labels").iterdir())) == 3 and len(list((tmp_path / "view").iterdir())) == 3


@pytest.mark.parametrize("args, needles", [
    (["--source", "nowhere.mp4"], ["nowhere.mp4", "does not exist"]),
    (["--source", "{video}", "--sink", "out.txt"], ["unknown file type"]),
    (["--source", "{video}", "--stats-json", "missing/s.json"], ["missing", "does not exist"]),
    (["--source", "{video}", "--size", "10xz"], ["HxW"]),
    (["--source", "{video}", "--provider", "cuda"], ["onnxruntime-gpu"]),
])
def test_user_errors_are_one_line(run_cli, tiny_onnx, tmp_path, args, needles):
    video = write_video(tmp_path / "v.mp4", 2)
    args = [a.replace("{video}", str(video)) for a in args]
    completed = run_cli("run", tiny_onnx, *args, cwd=tmp_path)
    assert_one_line_error(completed, *needles)


def test_missing_model_is_one_line(run_cli, tmp_path):
    completed = run_cli("run", tmp_path / "nope.onnx", "--source", "0")
    assert_one_line_error(completed, "nope.onnx")


def test_tensorrt_flags_reach_the_backend():
    from fcn_edge.cli import build_parser
    from fcn_edge.stream.command import backend_options

    args = build_parser().parse_args(["run", "m.engine", "--source", "0", "--device", "cuda:1", "--no-sidecar-check",
                                      "--lean-runtime", "/usr/lib/libnvinfer_lean.so.10"])
    options = backend_options("tensorrt", args)
    assert options["device_id"] == 1 and options["check_sidecar"] is False
    assert options["lean_runtime"] == "/usr/lib/libnvinfer_lean.so.10"


def test_single_client_octet_stream_camera_dies_mid_stream(tiny_onnx, tmp_path):
    """An MJPEG camera allowing one client, sending application/octet-stream chunked (FFmpeg's HTTP
    output): run reads it on one connection, reconnects when the stream ends, keeps trying once the
    camera is gone, stops cleanly on SIGINT to its process group and writes its stats."""
    stats = tmp_path / "s.json"
    server = MjpegServer(fps=50, frames_per_connection=15, content_type="application/octet-stream", chunked=True,
                         single_client=True).start()
    try:
        process, lines, thread = start_run(["run", tiny_onnx, "--source", server.cam_url, "--sink", "none",
                                            "--stats-json", stats, "--reconnect", "inf", "--reconnect-delay", "0.05",
                                            "--stall-timeout", "2"], tmp_path, own_group=True)
        deadline = time.monotonic() + 60
        while server.connections < 2 and time.monotonic() < deadline:   # the stream ended once and came back
            time.sleep(0.05)
    finally:
        server.stop()   # the camera dies
    time.sleep(1.0)     # reconnect attempts against a closed port
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 0, "".join(lines)
    thread.join(5)
    text = "".join(lines)
    assert "Traceback" not in text and "reconnect attempt" in text
    assert server.refused == 0   # never a second connection while one was open
    data = json.loads(stats.read_text())
    assert data["stop_reason"] == "signal" and data["reconnects"] >= 1
    assert data["frames"]["captured"] >= 15 and data["frames"]["processed"] > 0   # live: the newest frame wins


def test_a_corrupt_onnx_gets_the_sentence_info_gives(run_cli, tiny_onnx, tmp_path):
    """Not ONNX Runtime's "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF": one sentence for run, eval, bench, info."""
    broken = tmp_path / "broken.onnx"
    data = tiny_onnx.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    video = write_video(tmp_path / "v.mp4", 2)
    sentence = f"{broken} is not an ONNX model (it is corrupt, truncated or another format)"
    commands = [["info", broken], ["run", broken, "--source", video], ["bench", broken, "--iterations", "1"]]
    if sys.version_info >= (3, 10):  # export is the build half: on 3.8/3.9 it refuses first (tests/test_cli_python.py)
        commands.append(["export", "--lint-only", broken])
    for args in commands:
        done = run_cli(*args, cwd=tmp_path)
        assert_one_line_error(done, sentence)
        assert "ONNXRuntimeError" not in done.stderr


def test_a_missing_camera_says_why_first(run_cli, tiny_onnx, tmp_path):
    if os.path.exists("/dev/video0"):
        pytest.skip("this machine has a camera 0")
    done = run_cli("run", tiny_onnx, "--source", "0", "--reconnect", "0", cwd=tmp_path)
    assert_one_line_error(done, "camera 0")
    assert done.stderr.splitlines()[0].startswith("fcn-edge run: error: no camera 0"), done.stderr
    assert "after 0 frames" not in done.stderr
