"""Malformed source strings and sources that do not exist: one line naming the value, exit non-zero.

``fcn-edge run`` parses every ``--source`` and opens it before the stream starts, so a
typo or an unplugged camera fails at once (no reconnect loop for a first open).
"""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import assert_one_line_error

MALFORMED = {
    "empty": ("", "empty source"),
    "blank": ("   ", "empty source"),
    "unknown scheme": ("foo://bar", "foo://"),
    "csi without a number": ("csi://abc", "csi://abc"),
    "rtsp without a host": ("rtsp:///x", "rtsp:///x"),
    "http without a host": ("http://", "http://"),
    "gst without a pipeline": ("gst:", "gst:"),
    "v4l2 outside /dev": ("v4l2://etc/passwd", "v4l2://etc/passwd"),
    "missing file": ("no_such_clip.mp4", "no_such_clip.mp4"),
    "glob matching nothing": ("frames_*/none_*.png", "none_*.png"),
}
ABSENT = {
    "camera index": ("99", "/dev/video99"),
    "V4L2 device": ("/dev/video99", "/dev/video99"),
    "v4l2 URL": ("v4l2:///dev/video99", "/dev/video99"),
    "refused RTSP": ("rtsp://127.0.0.1:1/x", "rtsp://127.0.0.1:1/x"),
    "refused HTTP": ("http://127.0.0.1:1/stream.mjpg", "http://127.0.0.1:1/stream.mjpg"),
    "not a video": ("{tmp}/clip.mp4", "clip.mp4"),
}


@pytest.mark.parametrize("case", list(MALFORMED) + list(ABSENT))
def test_bad_source_is_one_line_error(run_cli, tiny_onnx, tmp_path, case):
    text, needle = MALFORMED.get(case) or ABSENT[case]
    if "{tmp}" in text:
        text = text.format(tmp=tmp_path)
        (tmp_path / "clip.mp4").write_bytes(os.urandom(3000))
    if case in ABSENT and text.startswith("/dev/") and os.path.exists(text):
        pytest.skip(f"{text} exists on this machine")
    stats = tmp_path / "stats.json"
    completed = run_cli("run", tiny_onnx, "--source", text, "--stats-json", stats, "--reconnect", "0",
                        "--stall-timeout", "2", cwd=tmp_path, timeout=120)
    assert_one_line_error(completed, needle)
    assert not stats.exists()


def test_csi_camera_without_gstreamer(run_cli, tiny_onnx):
    from fcn_edge.stream.sources import has_gstreamer

    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer: csi://7 would try nvarguscamerasrc instead")
    completed = run_cli("run", tiny_onnx, "--source", "csi://7")
    assert_one_line_error(completed, "csi://7", "GStreamer")


def test_short_open_timeout_for_unreachable_streams():
    """The API's open_timeout is handed to FFmpeg, so an unreachable stream fails instead of hanging."""
    from fcn_edge.errors import SourceError
    from fcn_edge.stream.sources import SourceOptions, open_source

    with pytest.raises(SourceError, match=re.escape("rtsp://127.0.0.1:1/x")):
        open_source("rtsp://127.0.0.1:1/x", SourceOptions(open_timeout=2.0, read_timeout=2.0))


def test_credentials_in_urls_are_not_printed(run_cli, tiny_onnx):
    completed = run_cli("run", tiny_onnx, "--source", "http://user:secret@127.0.0.1:1/stream.mjpg")
    assert_one_line_error(completed)
    assert "secret" not in completed.stderr
