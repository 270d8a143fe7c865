from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from fcn_edge.errors import FcnEdgeError
from fcn_edge.stream.frames import Frame, FrameResult
from fcn_edge.stream.sinks import (DisplaySink, ImageFolderSink, NullSink, SinkError, VideoFileSink, parse_sink)
from fcn_edge.data.synth import count_video_frames


def result(index: int, size=(48, 64), name=None) -> FrameResult:
    image = np.full((*size, 3), index * 10 % 256, np.uint8)
    labels = np.full(size, index % 5, np.uint8)
    frame = Frame(image, index, 0.0, 0.0, name=name)
    return FrameResult(frame, labels, None, labels, {}, ["a", "b", "c", "d", "e"])


def test_parse_sink(tmp_path):
    assert isinstance(parse_sink("none"), NullSink)
    assert isinstance(parse_sink("display"), DisplaySink)
    video = parse_sink(str(tmp_path / "x.MKV"))
    assert isinstance(video, VideoFileSink) and video.codec == "XVID"
    assert parse_sink(str(tmp_path / "x.avi")).codec == "MJPG"
    assert parse_sink(str(tmp_path / "x.mp4"), codec="avc1").codec == "avc1"
    folder = parse_sink(str(tmp_path / "frames"))
    assert isinstance(folder, ImageFolderSink) and not folder.labels
    labels = parse_sink(f"labels:{tmp_path / 'l'}")
    assert isinstance(labels, ImageFolderSink) and labels.labels and not labels.needs_render
    with pytest.raises(SinkError, match="unknown file type .txt"):
        parse_sink(str(tmp_path / "x.txt"))
    with pytest.raises(SinkError, match="four-character"):
        parse_sink(str(tmp_path / "x.mp4"), codec="h264x")
    with pytest.raises(SinkError, match="labels: needs a folder"):
        parse_sink("labels:")


def test_video_is_written_atomically_and_verified(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    sink = VideoFileSink(out, fps=10)
    sink.open()
    for i in range(5):
        sink.write(result(i), None)
    assert out.read_bytes() == b"old"  # still the previous file while recording
    sink.write(result(5, size=(60, 80)), None)  # a differently sized frame is fitted, not dropped
    sink.close()
    assert count_video_frames(out) == 6
    assert not list(tmp_path.glob(".fcn-edge-tmp-*"))


def test_aborted_video_leaves_the_old_file(tmp_path):
    out = tmp_path / "out.avi"
    out.write_bytes(b"old")
    sink = VideoFileSink(out)
    sink.write(result(0), None)
    sink.close(abort=True)
    assert out.read_bytes() == b"old" and not list(tmp_path.glob(".fcn-edge-tmp-*"))


def test_empty_run_writes_no_video(tmp_path, caplog):
    sink = VideoFileSink(tmp_path / "out.mp4")
    with caplog.at_level(logging.WARNING):
        sink.close()
    assert not (tmp_path / "out.mp4").exists() and "no frames" in caplog.text


def test_video_destination_checks(tmp_path):
    with pytest.raises(FcnEdgeError, match="does not exist"):
        VideoFileSink(tmp_path / "missing" / "out.mp4").open()
    with pytest.raises(SinkError, match="cannot tell the codec"):
        VideoFileSink(tmp_path / "out.xyz")


def test_image_folder_names(tmp_path):
    sink = ImageFolderSink(tmp_path / "out")
    sink.open()
    sink.write(result(3), None)
    sink.write(result(4, name="street"), None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000003.png", "street.png"]
    labels = ImageFolderSink(tmp_path / "labels", labels=True)
    labels.open()
    big = result(1)
    big.labels = np.full((48, 64), 300, np.int32)
    labels.write(big, None)
    saved = cv2.imread(str(tmp_path / "labels" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert saved.dtype == np.uint16 and saved[0, 0] == 300
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkError, match="not a folder"):
        ImageFolderSink(tmp_path / "file").open()
    with pytest.raises(SinkError, match="does not exist"):
        ImageFolderSink(tmp_path / "a" / "b").open()


def test_display_without_a_screen_or_gui_is_one_line(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="no display"):
        DisplaySink().open()
    if "NONE" in _gui_line():  # opencv-python-headless
        monkeypatch.setenv("DISPLAY", ":99")
        with pytest.raises(SinkError, match="no GUI support"):
            DisplaySink().open()


def _gui_line() -> str:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line
    return ""
