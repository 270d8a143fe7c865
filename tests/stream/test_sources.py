from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from fcn_edge.errors import SourceError
from fcn_edge.stream.sources import (SourceOptions, complete_gst_pipeline, csi_pipeline, has_gstreamer, open_source,
                                     parse_source, transform_frame)
from tests.onnx_models import write_images, write_video


@pytest.mark.parametrize("text, kind, target", [
    ("0", "webcam", "0"),
    (" 2 ", "webcam", "2"),
    ("/dev/video3", "v4l2", "/dev/video3"),
    ("v4l2:///dev/video1", "v4l2", "/dev/video1"),
    ("v4l2://1", "v4l2", "/dev/video1"),
    ("csi://0", "csi", "0"),
    ("rtsp://user:pw@cam.local:554/stream1", "rtsp", "rtsp://user:pw@cam.local:554/stream1"),
    ("http://192.168.1.5:8080/video.mjpg", "http", "http://192.168.1.5:8080/video.mjpg"),
    ("https://cam.example/stream", "http", "https://cam.example/stream"),
    # a gst: pipeline is live when it has a camera/network element or is-live=true (finite ones: tests/stream/test_gstreamer.py)
    ("gst:videotestsrc is-live=true ! videoconvert ! appsink", "gst", "videotestsrc is-live=true ! videoconvert ! appsink"),
])
def test_parse_live_sources(text, kind, target):
    spec = parse_source(text)
    assert (spec.kind, spec.target) == (kind, target)
    assert spec.live


def test_credentials_are_hidden_in_names():
    assert parse_source("rtsp://user:secret@cam/s").display_name == "rtsp://***@cam/s"


@pytest.mark.parametrize("text, needle", [
    ("", "empty source"),
    ("csi://front", "sensor number"),
    ("gst:", "no pipeline"),
    ("ftp://host/file", "unknown source scheme"),
    ("rtsp:///path", "no host"),
    ("http://", "no host"),
    ("/no/such/file.mp4", "does not exist"),
    ("/dev/video77x", "no device"),
])
def test_malformed_sources_are_one_line_errors(text, needle):
    with pytest.raises(SourceError, match=needle) as info:
        parse_source(text)
    assert "\n" not in str(info.value)


def test_file_kinds(tmp_path):
    video = write_video(tmp_path / "a.mp4", 5)
    images = write_images(tmp_path / "imgs", 3)
    assert parse_source(str(video)).kind == "video"
    assert parse_source(f"file://{video}").kind == "video"
    assert parse_source(str(images[0])).kind == "image"
    assert parse_source(str(tmp_path / "imgs")).kind == "folder"
    assert parse_source(str(tmp_path / "imgs" / "*.png")).kind == "glob"
    assert not parse_source(str(video)).live


def test_missing_cameras_fail_fast():
    with pytest.raises(SourceError, match="no camera 57"):
        open_source("57")
    with pytest.raises(SourceError, match="no device /dev/video57"):
        open_source("v4l2:///dev/video57")


def test_csi_and_gstreamer_pipelines():
    pipeline = csi_pipeline(1, 1920, 1080, 60, flip_method=2)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 ")
    assert "width=(int)1920, height=(int)1080, framerate=(fraction)60/1" in pipeline
    assert "flip-method=2" in pipeline and pipeline.endswith("appsink drop=true max-buffers=1 sync=false")
    assert complete_gst_pipeline("v4l2src ! jpegdec").endswith("format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")
    assert complete_gst_pipeline("x ! appsink name=s") == "x ! appsink name=s"
    if not has_gstreamer():
        with pytest.raises(SourceError, match="without GStreamer"):
            open_source("csi://0")
        with pytest.raises(SourceError, match="without GStreamer"):
            open_source("gst:videotestsrc")


def read_all(source, limit=1000):
    frames = []
    while len(frames) < limit:
        frame = source.read()
        if frame is None:
            break
        frames.append(frame)
    source.close()
    return frames


def test_video_file_every_frame_with_timestamps(tmp_path):
    video = write_video(tmp_path / "a.mp4", 7, size=(48, 64))
    source = open_source(str(video))
    assert source.frame_count == 7 and source.fps == pytest.approx(25.0)
    frames = read_all(source)
    assert [f.index for f in frames] == list(range(7))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.timings["capture"] >= 0 for f in frames)
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))


def test_loop_replays_files(tmp_path):
    video = write_video(tmp_path / "a.avi", 4, size=(48, 64))
    frames = read_all(open_source(str(video), SourceOptions(loop=True)), limit=10)
    assert len(frames) == 10
    images = write_images(tmp_path / "imgs", 3, size=(48, 64))
    frames = read_all(open_source(str(images[0].parent), SourceOptions(loop=True)), limit=7)
    assert [f.name for f in frames] == ["img_000", "img_001", "img_002"] * 2 + ["img_000"]


def test_folder_and_glob_in_name_order_skipping_unreadable_files(tmp_path, caplog):
    folder = tmp_path / "imgs"
    write_images(folder, 4, size=(48, 64))
    (folder / "img_001b.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        frames = read_all(open_source(str(folder)))
    assert [f.name for f in frames] == ["img_000", "img_001", "img_002", "img_003"]
    assert "img_001b.png" in caplog.text
    frames = read_all(open_source(str(folder / "img_00[02].png")))
    assert [f.name for f in frames] == ["img_000", "img_002"]
    with pytest.raises(SourceError, match="matches no image"):
        open_source(str(tmp_path / "*.jpg"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="has no images"):
        open_source(str(empty))


def test_single_image_and_corrupt_video(tmp_path):
    image = write_images(tmp_path, 1, size=(48, 64))[0]
    frames = read_all(open_source(str(image)))
    assert len(frames) == 1 and frames[0].name == "img_000"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 1000)
    with pytest.raises(SourceError, match="cannot decode the video"):
        open_source(str(bad))


def test_flip_rotate_resize_and_colour_normalisation():
    image = np.zeros((4, 6, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    flipped = transform_frame(image, SourceOptions(flip="h"))
    assert tuple(flipped[0, 5]) == (255, 0, 0)
    rotated = transform_frame(image, SourceOptions(rotate=90))
    assert rotated.shape == (6, 4, 3) and tuple(rotated[0, 3]) == (255, 0, 0)
    both = transform_frame(image, SourceOptions(flip="both", rotate=180))
    np.testing.assert_array_equal(both, image)
    resized = transform_frame(image, SourceOptions(width=12, height=8, resize=True))
    assert resized.shape == (8, 12, 3)
    grey = transform_frame(np.full((4, 6), 7, np.uint8), SourceOptions())
    assert grey.shape == (4, 6, 3) and grey[0, 0, 0] == 7
    bgra = transform_frame(np.zeros((4, 6, 4), np.uint8), SourceOptions())
    assert bgra.shape == (4, 6, 3)
    with pytest.raises(SourceError, match="flip"):
        SourceOptions(flip="diagonal")
    with pytest.raises(SourceError, match="rotate"):
        SourceOptions(rotate=45)
    with pytest.raises(SourceError, match="resize needs"):
        SourceOptions(resize=True, width=10)
    assert cv2 is not None
