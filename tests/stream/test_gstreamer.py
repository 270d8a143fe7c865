"""GStreamer pipelines: which ones are live (reopened when they end) and which end the run like a file.

The pipelines themselves run against real GStreamer in tests/system (the system OpenCV);
here the decisions that need no GStreamer: liveness, appsinks, the RTSP pipeline and --live.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from fcn_edge.errors import SourceError
from fcn_edge.stream.feed import default_policy
from fcn_edge.stream.sources import (SourceOptions, check_rtsp_server, complete_gst_pipeline, csi_pipeline, gst_pipeline_is_live,
                                     parse_source, rtsp_pipeline, v4l2_pipeline)

FINITE = [
    "videotestsrc num-buffers=45 ! video/x-raw,width=320,height=240 ! videoconvert ! appsink",
    "filesrc location=clip.mp4 ! qtdemux ! h264parse ! nvv4l2decoder ! nvvidconv ! appsink",
    "multifilesrc location=frame%05d.png ! pngdec ! videoconvert",
    "videotestsrc is-live=false ! videoconvert",
    "filesrc location=/data/v4l2src-notes.mp4 ! decodebin",  # an element name inside a file name is not an element
]
LIVE = [
    csi_pipeline(0),
    v4l2_pipeline("/dev/video0"),
    rtsp_pipeline("rtsp://127.0.0.1:8554/test"),
    "videotestsrc is-live=true num-buffers=20 ! videoconvert ! appsink",
    "videotestsrc is-live = 1 ! videoconvert",
    "uridecodebin uri=rtsp://cam/stream ! videoconvert ! appsink",
    "udpsrc port=5000 ! application/x-rtp ! rtph264depay ! avdec_h264 ! videoconvert",
]


@pytest.mark.parametrize("pipeline", FINITE)
def test_finite_pipelines_end_like_files(pipeline):
    spec = parse_source(f"gst:{pipeline}")
    assert not gst_pipeline_is_live(pipeline) and not spec.live
    assert default_policy(spec.live) == "every"  # every frame, in order, then the end


@pytest.mark.parametrize("pipeline", LIVE)
def test_camera_and_network_pipelines_are_live(pipeline):
    spec = parse_source(f"gst:{pipeline}")
    assert gst_pipeline_is_live(pipeline) and spec.live
    assert default_policy(spec.live) == "latest"


def test_added_appsink_drops_old_buffers_only_when_live():
    finite = complete_gst_pipeline("videotestsrc num-buffers=10")
    live = complete_gst_pipeline("v4l2src device=/dev/video0")
    assert finite.endswith("appsink drop=false max-buffers=4 sync=false")
    assert live.endswith("appsink drop=true max-buffers=1 sync=false")
    # --live makes a finite pipeline live, appsink included
    assert complete_gst_pipeline("videotestsrc", live=True).endswith("drop=true max-buffers=1 sync=false")
    user = "videotestsrc ! appsink name=mine"
    assert complete_gst_pipeline(user) == user


def test_user_live_flag_makes_any_source_live(tmp_path):
    spec = parse_source("gst:videotestsrc num-buffers=5")
    assert not spec.live and dataclasses.replace(spec, forced_live=True).live


def test_rtsp_pipeline_is_low_latency_and_quotes_the_url():
    text = rtsp_pipeline("rtsp://user:pw@10.0.0.2:554/cam 1", transport="udp")
    assert 'location="rtsp://user:pw@10.0.0.2:554/cam 1"' in text
    assert "latency=0" in text and "protocols=udp" in text and "drop=true max-buffers=1" in text


def test_rtsp_backend_option_is_checked():
    with pytest.raises(SourceError, match="rtsp backend"):
        SourceOptions(rtsp_backend="vlc")


def test_v4l2_pipeline_states_only_the_caps_asked_for():
    assert "video/x-raw" not in v4l2_pipeline("/dev/video1").split("!")[1]
    assert "video/x-raw,width=640,height=480,framerate=30/1" in v4l2_pipeline("/dev/video1", 640, 480, 30)


def test_live_flag_reopens_a_source_that_ends(run_cli, tiny_onnx, sample_video, tmp_path):
    # a 12-frame file read as if it were a camera: reopened each time it ends, until --max-frames
    stats = tmp_path / "stats.json"
    run_cli("run", tiny_onnx, "--source", sample_video, "--live", "--max-frames", 30, "--reconnect-delay", 0.05,
            "--sink", "none", "--stats-json", stats, check=True)
    data = json.loads(stats.read_text())
    assert data["reconnects"] >= 1 and data["stop_reason"] == "max-frames"
    assert data["source"]["live"] and data["source"]["policy"] == "latest"


def _one_answer_server(answer: bytes):
    """A listening socket on 127.0.0.1 that answers one connection with ``answer``; (port, thread)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_rtsp_server_check_before_a_gstreamer_open():
    # OpenCV waits without a limit for a GStreamer pipeline to start; the check bounds it.
    port, thread = _one_answer_server(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
    check_rtsp_server(f"rtsp://127.0.0.1:{port}/test", 5.0, "cam")
    thread.join(5)
    port, thread = _one_answer_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(SourceError, match="not as an RTSP server"):
        check_rtsp_server(f"rtsp://127.0.0.1:{port}/test", 5.0, "cam")
    thread.join(5)
    with pytest.raises(SourceError, match=f"127.0.0.1:{port} does not answer"):  # nobody listens there now
        check_rtsp_server(f"rtsp://127.0.0.1:{port}/test", 5.0, "cam")
