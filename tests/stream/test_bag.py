"""Bags in and out: rosbag2 (MCAP and sqlite3) and bare .mcap files, read and written without ROS.

Inputs are written with one library and outputs read back with the other (see
bagtools.py): a rosbags-written bag goes through ``fcn-edge run`` into an MCAP file read
with mcap-ros2-support's decoder, an mcap-written file comes out as a sqlite3 rosbag2
read with rosbags.  Labels must equal the local runner's (Segmenter.segment) on the same
frames, stamps and frame_ids must be the recorded ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="needs the robotics extra (pip install 'fcn-edge[robotics]')")
pytest.importorskip("mcap_ros2", reason="needs the robotics extra (pip install 'fcn-edge[robotics]')")

from fcn_edge.errors import SourceError  # noqa: E402
from fcn_edge.stream.bag import iter_bag_images  # noqa: E402
from fcn_edge.stream.rosimage import bgr_to_image, compressed_to_bgr, image_to_bgr  # noqa: E402
from fcn_edge.stream.sources import BadFrame, SourceOptions, open_source, parse_source  # noqa: E402
from tests.conftest import assert_one_line_error, cli_env  # noqa: E402
from tests.stream.bagtools import (expected_bgr, image_array, make_frames, raw_fields, read_mcap_ros2,  # noqa: E402
                                   read_rosbags, stamp_of, write_mcap_ros2, write_rosbags)


@pytest.fixture(scope="module")
def segmenter(tiny_onnx):
    import fcn_edge

    with fcn_edge.Segmenter.open(tiny_onnx, intra_op_threads=1) as seg:
        yield seg


def read_all(source):
    frames = []
    while True:
        frame = source.read()
        if frame is None:
            return frames
        frames.append(frame)


# ------------------------------------------------------------ conversions
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_raw_image_encodings_and_row_padding(encoding, pad):
    frame = make_frames(1, size=(12, 20))[0]
    step, data = raw_fields(frame, encoding, pad)
    image = image_to_bgr(encoding, 12, 20, step, data)
    assert image.dtype == np.uint8 and image.shape == (12, 20, 3)
    np.testing.assert_array_equal(image, expected_bgr(frame, encoding))


def test_conversion_rejects_what_it_cannot_read():
    with pytest.raises(BadFrame, match="yuv422"):
        image_to_bgr("yuv422", 2, 2, 4, bytes(8))
    with pytest.raises(BadFrame, match="bytes"):
        image_to_bgr("bgr8", 4, 4, 12, bytes(20))
    with pytest.raises(BadFrame, match="step"):
        image_to_bgr("bgr8", 4, 4, 8, bytes(64))
    with pytest.raises(BadFrame, match="does not decode"):
        compressed_to_bgr("jpeg", b"not a jpeg")
    encoding, height, width, step, data = bgr_to_image(np.zeros((3, 4), np.uint8), "mono8")
    assert (encoding, height, width, step, len(data)) == ("mono8", 3, 4, 4, 12)


# ------------------------------------------------------------ the source
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_source_reads_both_storages_with_recorded_stamps(tmp_path, storage):
    frames = make_frames(4)
    bag = tmp_path / "rec"
    times = write_rosbags(bag, frames, storage=storage, encoding="rgb8", pad=3)
    spec = parse_source(str(bag))  # a folder with metadata.yaml is recognised without bag:
    assert spec.kind == "bag"
    got = read_all(open_source(spec))
    assert [f.stamp_ns for f in got] == times
    assert all(f.frame_id == "camera_optical" for f in got)
    assert [f.wall_time for f in got] == pytest.approx([t / 1e9 for t in times])
    for frame, original in zip(got, frames):
        np.testing.assert_array_equal(frame.image, original)


def test_source_reads_a_chunked_mcap_file_of_compressed_images(tmp_path):
    frames = make_frames(3)
    path = tmp_path / "drive.mcap"
    times = write_mcap_ros2(path, frames, kind="compressed", image_format="png")
    assert parse_source(str(path)).kind == "bag"
    got = read_all(open_source(f"bag:{path}"))
    assert [f.stamp_ns for f in got] == times
    for frame, original in zip(got, frames):
        np.testing.assert_array_equal(frame.image, original)


def test_topic_choice_and_its_errors(tmp_path):
    frames = make_frames(2)
    bag = tmp_path / "two"
    write_rosbags(bag, frames, extra_topics={"/notes": "std_msgs/msg/String"})
    # one image topic: picked even though another topic exists
    assert len(read_all(open_source(f"bag:{bag}"))) == 2
    with pytest.raises(SourceError, match=r"no topic /nope; its image topics: /camera/image_raw"):
        open_source(f"bag:{bag}", SourceOptions(topic="/nope"))
    with pytest.raises(SourceError, match=r"/notes .* is std_msgs/msg/String, not sensor_msgs/Image"):
        open_source(f"bag:{bag}", SourceOptions(topic="/notes"))
    # two image topics and no --topic: the error lists both
    two = tmp_path / "cams.mcap"
    from mcap_ros2.writer import Writer

    from tests.stream.bagtools import IMAGE_MSGDEF

    with open(two, "wb") as handle:
        writer = Writer(handle)
        schema = writer.register_msgdef("sensor_msgs/msg/Image", IMAGE_MSGDEF)
        for topic in ("/left/image", "/right/image"):
            step, data = raw_fields(frames[0], "bgr8")
            writer.write_message(topic, schema, {"header": {"stamp": {"sec": 1, "nanosec": 0}, "frame_id": "x"},
                                                 "height": 48, "width": 80, "encoding": "bgr8", "is_bigendian": 0,
                                                 "step": step, "data": data}, log_time=1)
        writer.finish()
    with pytest.raises(SourceError, match=r"several image topics \(/left/image, /right/image\): choose one with --topic"):
        open_source(f"bag:{two}")
    assert read_all(open_source(f"bag:{two}", SourceOptions(topic="/right/image")))[0].image.shape == (48, 80, 3)


def test_missing_and_damaged_bags_are_one_sentence(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        parse_source(f"bag:{tmp_path / 'nothing'}")
    with pytest.raises(SourceError, match="no metadata.yaml"):
        open_source(f"bag:{tmp_path}")
    # rosbags writes one chunk: cut in the middle nothing is left to read, and that is one sentence
    bag = tmp_path / "cut"
    write_rosbags(bag, make_frames(3))
    data = (bag / "cut.mcap").read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cannot read bag .*cut.mcap|damaged before its first image"):
        source = open_source(f"bag:{tmp_path / 'cut.mcap'}")
        read_all(source)


def test_truncated_recording_keeps_every_complete_chunk(tmp_path, caplog):
    """A recorder killed mid-write (no index, half a chunk): the messages before the damage are all read."""
    frames = make_frames(12)
    path = tmp_path / "killed.mcap"
    times = write_mcap_ros2(path, frames, kind="raw", encoding="bgr8", chunk_size=20_000)  # ~2 frames a chunk
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    with caplog.at_level("WARNING"):
        got = read_all(open_source(str(cut)))
    assert any("truncated" in r.getMessage() for r in caplog.records)
    assert 4 <= len(got) < 12
    assert [f.stamp_ns for f in got] == times[: len(got)]
    for frame, original in zip(got, frames):
        np.testing.assert_array_equal(frame.image, original)


# ------------------------------------------------------------ end to end
def test_cli_bag_to_mcap_read_back_with_the_other_library(tmp_path, run_cli, tiny_onnx, segmenter):
    """rosbags-written sqlite3 bag (rgb8, padded rows) -> fcn-edge run -> out.mcap, read with mcap-ros2-support."""
    frames = make_frames(5)
    bag = tmp_path / "rec"
    times = write_rosbags(bag, frames, storage="sqlite3", encoding="rgb8", pad=2, bad_encoding_at=2)
    out = tmp_path / "seg.mcap"
    stats = tmp_path / "stats.json"
    done = run_cli("run", tiny_onnx, "--source", f"bag:{bag}", "--sink", out, "--bag-topics",
                   "confidence,class_info,overlay", "--stats-json", stats, "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "yuv422" in done.stderr  # the bad message: one warning line, skipped and counted
    assert json.loads(stats.read_text())["bad_frames"] == 1
    source_meta = json.loads(stats.read_text())["source"]
    assert source_meta["topic"] == "/camera/image_raw" and source_meta["recorded_start_ns"] == times[0] + 5_000_000
    kept = [i for i in range(5) if i != 2]
    topics = read_mcap_ros2(out)
    assert {t: len(m) for t, m in topics.items()} == {
        "/fcn_edge/class_mask": 4, "/fcn_edge/confidence": 4, "/fcn_edge/class_info": 4, "/fcn_edge/overlay": 4}
    for (log_time, schema, mask), (_, _, conf), (_, _, info), (_, _, overlay), i in zip(
            topics["/fcn_edge/class_mask"], topics["/fcn_edge/confidence"], topics["/fcn_edge/class_info"],
            topics["/fcn_edge/overlay"], kept):
        assert schema == "sensor_msgs/msg/Image"
        assert mask.encoding == "mono8" and conf.encoding == "mono8" and overlay.encoding == "bgr8"
        assert stamp_of(mask) == stamp_of(conf) == stamp_of(overlay) == log_time == times[i]
        assert mask.header.frame_id == "camera_optical"
        expected = segmenter.segment(frames[i])
        np.testing.assert_array_equal(image_array(mask), expected.labels)
        assert np.abs(image_array(conf).astype(int) - np.rint(expected.confidence * 255)).max() <= 1
        assert image_array(overlay).shape == (48, 80, 3)
        payload = json.loads(info.data)
        assert payload["stamp_ns"] == times[i] and payload["width"] == 80 and payload["height"] == 48
        fractions = {c["id"]: c["fraction"] for c in payload["classes"]}
        ids, counts = np.unique(expected.labels, return_counts=True)
        assert fractions == {int(k): pytest.approx(v / expected.labels.size, abs=1e-6) for k, v in zip(ids, counts)}


def test_cli_mcap_to_sqlite3_bag_read_back_with_rosbags(tmp_path, run_cli, tiny_onnx, segmenter):
    """mcap-written .mcap of JPEG CompressedImages -> bag:DIR --bag-storage sqlite3 (valid metadata), read with rosbags."""
    frames = make_frames(4)
    src = tmp_path / "cam.mcap"
    times = write_mcap_ros2(src, frames, kind="compressed", image_format="jpg")
    out = tmp_path / "result_bag"
    done = run_cli("run", tiny_onnx, "--source", src, "--sink", f"bag:{out}", "--bag-storage", "sqlite3",
                   "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["metadata.yaml", "result_bag.db3"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fcn-edge-tmp")]
    from rosbags.rosbag2 import Reader

    with Reader(out) as reader:
        assert reader.message_count == 4 and reader.start_time == times[0]
        assert {c.topic: c.msgtype for c in reader.connections} == {"/fcn_edge/class_mask": "sensor_msgs/msg/Image"}
    messages = read_rosbags(out)["/fcn_edge/class_mask"]
    decoded = [image for _, _, image in iter_bag_images(src)]  # the frames the run saw (JPEG decoded once)
    for (log_time, _, mask), frame, stamp in zip(messages, decoded, times):
        assert stamp_of(mask) == log_time == stamp
        np.testing.assert_array_equal(image_array(mask), segmenter.segment(frame).labels)


def test_api_stream_bag_to_bag_and_realtime(tmp_path, segmenter):
    """Segmenter.stream('bag:...', topic=..., sinks=['x.mcap']); --realtime keeps the recorded order and stamps."""
    frames = make_frames(4)
    bag = tmp_path / "rec"
    times = write_rosbags(bag, frames, storage="mcap", kind="compressed",
                          extra_topics={"/notes": "std_msgs/msg/String"})
    out = tmp_path / "api.mcap"
    results = list(segmenter.stream(f"bag:{bag}", topic="/camera/image_raw", sinks=[str(out)]))
    assert [round(r.wall_time * 1e9) for r in results] == pytest.approx(times, abs=1000)
    masks = read_mcap_ros2(out)["/fcn_edge/class_mask"]
    assert [stamp_of(m) for _, _, m in masks] == times
    for (_, _, mask), result in zip(masks, results):
        np.testing.assert_array_equal(image_array(mask), result.labels)
    live = list(segmenter.stream(f"bag:{bag}", realtime=True))
    stamps = [round(r.wall_time * 1e9) for r in live]
    assert stamps == sorted(stamps) and all(any(abs(s - t) < 1000 for t in times) for s in stamps)
    assert live[-1].wall_time == pytest.approx(times[-1] / 1e9)  # the newest frame is never dropped


def _start_run(args, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "fcn_edge", "run", *map(str, args)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def _wait_for(proc, needle, timeout=60):
    """Read the run's stderr until ``needle`` appears (the run is then past opening its sinks)."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError("".join(lines))


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_run_leaves_a_complete_bag_or_none(tmp_path, tiny_onnx, how):
    frames = make_frames(2)
    bag = tmp_path / "long"
    # 60 frames 0.1 s apart, replayed at recorded speed: still running when the signal comes
    write_rosbags(bag, frames * 30, storage="mcap")
    out = tmp_path / "out.mcap"
    proc = _start_run([tiny_onnx, "--source", f"bag:{bag}", "--realtime", "--sink", out, "--threads", "1",
                       "--stats-interval", "0.3"], tmp_path)
    try:
        _wait_for(proc, "FPS")  # a progress line: frames are being written
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    hidden = [p for p in tmp_path.iterdir() if p.name.startswith(".fcn-edge-tmp")]
    if how != "SIGKILL":  # finalised like a normal end
        assert proc.returncode == 0, err
        masks = read_mcap_ros2(out)["/fcn_edge/class_mask"]
        assert 0 < len(masks) < 60
        assert not hidden
    else:
        assert not out.exists()  # nothing half-written at the target; the hidden folder goes on a later run
        assert len(hidden) == 1 and hidden[0].is_dir()


def test_cli_bag_errors_are_one_line(tmp_path, run_cli, tiny_onnx):
    bag = tmp_path / "rec"
    write_rosbags(bag, make_frames(1), extra_topics={"/notes": "std_msgs/msg/String"})
    done = run_cli("run", tiny_onnx, "--source", f"bag:{bag}", "--topic", "/notes")
    assert_one_line_error(done, "/notes", "std_msgs/msg/String", "/camera/image_raw")
    done = run_cli("run", tiny_onnx, "--source", f"bag:{bag}", "--sink", tmp_path / "x.mcap", "--bag-topics", "depth")
    assert_one_line_error(done, "depth", "overlay")


def test_hidden_folder_of_a_killed_writer_is_removed_later(tmp_path):
    from fcn_edge.fileio import remove_stale_temporary_folders

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    old, fresh, alive = (tmp_path / f".fcn-edge-tmp-{dead_pid}-a.bag", tmp_path / f".fcn-edge-tmp-{dead_pid}-b.bag",
                         tmp_path / f".fcn-edge-tmp-{os.getppid()}-c.bag")
    for folder in (old, fresh, alive):
        (folder / "x").mkdir(parents=True)
    past = time.time() - 120
    os.utime(old, (past, past))
    os.utime(alive, (past, past))
    assert remove_stale_temporary_folders(tmp_path, suffix=".bag") == [old]
    assert fresh.exists() and alive.exists()


def test_bag_and_foxglove_modules_load_their_libraries_only_when_used(tmp_path, tiny_onnx):
    """Importing the robotics sinks/sources pulls in nothing; a bag-to-bag run never imports torch or the build half."""
    bag = tmp_path / "rec"
    write_rosbags(bag, make_frames(2))
    code = f"""
import sys
import fcn_edge.stream.bag, fcn_edge.stream.bagsink, fcn_edge.stream.foxglove, fcn_edge.stream.rosimage
import fcn_edge.stream.command
heavy = ("rosbags", "mcap", "mcap_ros2", "foxglove._foxglove_py", "cv2", "torch", "onnxruntime")
print("IMPORT", [m for m in heavy if m in sys.modules])
from fcn_edge import Segmenter
with Segmenter.open({str(tiny_onnx)!r}) as seg:
    n = sum(1 for _ in seg.stream({f"bag:{bag}"!r}, sinks=[{str(tmp_path / "o.mcap")!r}]))
build = ("torch", "fcn_edge.data", "fcn_edge.train", "fcn_edge.models", "fcn_edge.calib", "fcn_edge.export",
         "fcn_edge.engine")
print("RUN", n, [m for m in build if m in sys.modules])
"""
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "IMPORT []" in done.stdout and "RUN 2 []" in done.stdout, done.stdout
