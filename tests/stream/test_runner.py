"""The streaming runner end to end with a tiny ONNX model."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from fcn_edge.errors import FcnEdgeError, SourceError
from fcn_edge.runtime import InferenceResult, Runner, open_runner
from fcn_edge.stream import (CallbackSink, ImageFolderSink, ReconnectPolicy, RunConfig, SourceOptions, StreamRunner,
                             VideoFileSink)
from fcn_edge.data.synth import count_video_frames
from tests.onnx_models import write_images, write_video
from tests.stream.mjpeg_server import MjpegServer


class SlowRunner(Runner):
    """Test double: a real runner behind an artificial delay (a device slower than the camera)."""

    backend = "slow"

    def __init__(self, inner: Runner, delay: float, fail_at: int | None = None) -> None:
        super().__init__()
        self.inner, self.delay, self.fail_at = inner, delay, fail_at
        self.model_path, self.info, self.io = inner.model_path, inner.info, inner.io
        self.calls = 0

    def _run(self, batch: np.ndarray) -> InferenceResult:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("device fell off the bus")
        time.sleep(self.delay)
        return self.inner.infer(batch)


@pytest.fixture
def onnx_runner(tiny_onnx):
    with open_runner(tiny_onnx, intra_op_threads=1) as runner:
        yield runner


def test_file_every_frame_in_order(onnx_runner, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 9, size=(120, 160))
    stream = StreamRunner(onnx_runner, str(video))
    results = list(stream.results())
    assert stream.policy == "every"
    assert [r.index for r in results] == list(range(9))
    first = results[0]
    assert first.labels.shape == (120, 160) and first.labels.dtype == np.uint8
    assert first.confidence.shape == (120, 160)
    assert first.network_labels.shape == (64, 96)
    assert {"capture", "preprocess", "inference", "postprocess", "end_to_end", "backend_run"} <= set(first.timings)
    # the same frame through the runner directly gives the same labels
    direct = onnx_runner.infer(cv2.resize(first.image, (96, 64), interpolation=cv2.INTER_LINEAR)[None])
    np.testing.assert_array_equal(direct.labels[0], first.network_labels)
    stats = stream.stats.to_dict()
    assert stats["frames"] == {"captured": 9, "processed": 9, "dropped": 0, "written": 0}
    assert stats["stop_reason"] == "end-of-source" and stats["network_size"] == [64, 96]
    assert stats["latency_ms"]["end_to_end"]["count"] == 9


def test_latest_frame_policy_drops_frames_instead_of_lagging(onnx_runner):
    slow = SlowRunner(onnx_runner, delay=0.04)
    lags = []
    with MjpegServer(fps=100) as server:
        stream = StreamRunner(slow, server.url, config=RunConfig(max_frames=12, warmup=0))
        for result in stream.results():
            lags.append(stream._feed.captured - 1 - result.index)
    assert stream.policy == "latest"
    stats = stream.stats
    assert stats.frames_processed == 12
    assert stats.frames_dropped > 0 and stats.frames_captured > stats.frames_processed
    # a queue would fall further behind with every frame; the latest-frame policy stays a few frames behind
    assert max(lags[4:]) <= 10, lags
    assert stats.stop_reason == "max-frames"


def test_live_stream_that_dies_mid_way_and_comes_back(onnx_runner):
    events = []
    with MjpegServer(fps=100, frames_per_connection=5) as server:
        config = RunConfig(max_frames=14, every_frame=True, warmup=0,
                           reconnect=ReconnectPolicy(max_attempts=5, initial_delay=0.02, max_delay=0.1))
        stream = StreamRunner(onnx_runner, server.url, config=config, on_event=events.append,
                              source_options=SourceOptions(read_timeout=2.0))
        stats = stream.run()
    assert stats.frames_processed == 14
    assert stats.reconnects >= 2
    kinds = [e["kind"] for e in stats.to_dict()["events"]]
    assert "lost" in kinds and "reconnected" in kinds
    assert [e.kind for e in events] == kinds


def test_source_lost_for_good_finalises_outputs_then_raises(onnx_runner, tmp_path):
    out = tmp_path / "out.avi"
    server = MjpegServer(fps=100, frames_per_connection=6).start()
    config = RunConfig(every_frame=True, warmup=0,
                       reconnect=ReconnectPolicy(max_attempts=2, initial_delay=0.02, max_delay=0.05))
    stream = StreamRunner(onnx_runner, server.url, config=config, sinks=[VideoFileSink(out)],
                          source_options=SourceOptions(read_timeout=1.0))
    seen = 0
    with pytest.raises(SourceError, match="reconnect attempt"):
        for _ in stream.results():
            seen += 1
            if seen == 6:
                server.stop()
    assert stream.stats.stop_reason == "source-lost" and stream.stats.error
    assert count_video_frames(out) == stream.stats.frames_processed >= 6


def test_stop_from_another_thread(onnx_runner, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 5)
    stream = StreamRunner(onnx_runner, str(video), source_options=SourceOptions(loop=True))
    count = 0
    for _ in stream.results():
        count += 1
        if count == 3:
            threading.Thread(target=stream.stop).start()
    assert stream.stats.stop_reason == "stopped" and count >= 3


def test_backend_failure_discards_the_partial_video(onnx_runner, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 8)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous run")
    stream = StreamRunner(SlowRunner(onnx_runner, 0.0, fail_at=4), str(video), sinks=[VideoFileSink(out)],
                          config=RunConfig(warmup=0))
    with pytest.raises(RuntimeError, match="fell off the bus"):
        stream.run()
    assert out.read_bytes() == b"previous run"  # never replaced by half a video
    assert stream.stats.stop_reason == "error"
    assert not list(tmp_path.glob(".fcn-edge-tmp-*"))


class RecordingSink(CallbackSink):
    """Test double: a callback sink that records how it was opened and closed."""

    def __init__(self) -> None:
        super().__init__(lambda result, rendered: None)
        self.calls: list[str] = []

    def open(self) -> None:
        self.calls.append("open")

    def close(self, *, abort: bool = False) -> None:
        self.calls.append(f"close(abort={abort})")


def test_a_source_that_cannot_open_closes_the_sinks_already_opened(onnx_runner, tmp_path):
    """As with several sources: a window or stream server opened before the source is not left behind."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    sink = RecordingSink()
    stream = StreamRunner(onnx_runner, str(broken), sinks=[sink], config=RunConfig(warmup=0))
    with pytest.raises(SourceError):
        stream.run()
    assert sink.calls == ["open", "close(abort=True)"]
    assert stream.stats.stop_reason == "error" and stream.stats.started_at is None


def test_labels_folder_and_callbacks(onnx_runner, tmp_path):
    write_images(tmp_path / "in", 3, size=(100, 140))
    seen = []
    sinks = [ImageFolderSink(tmp_path / "labels", labels=True), ImageFolderSink(tmp_path / "view"),
             CallbackSink(lambda result, rendered: seen.append((result.index, rendered.shape)), render=True)]
    results = list(StreamRunner(onnx_runner, str(tmp_path / "in"), sinks=sinks).results())
    names = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert names == ["img_000.png", "img_001.png", "img_002.png"]
    saved = cv2.imread(str(tmp_path / "labels" / "img_001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(saved, results[1].labels)
    assert cv2.imread(str(tmp_path / "view" / "img_000.png")).shape == (100, 140, 3)
    assert seen == [(0, (100, 140, 3)), (1, (100, 140, 3)), (2, (100, 140, 3))]


def test_raw_models_are_normalised_in_the_capture_thread(tiny_onnx_raw, tiny_onnx, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 3)
    with open_runner(tiny_onnx_raw) as raw, open_runner(tiny_onnx) as deployed:
        a = [r.labels for r in StreamRunner(raw, str(video)).results()]
        b = [r.labels for r in StreamRunner(deployed, str(video)).results()]
    assert all((x == y).mean() > 0.999 for x, y in zip(a, b))


def test_realtime_files_use_the_latest_frame_policy(onnx_runner, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 6, fps=100)
    stream = StreamRunner(onnx_runner, str(video), config=RunConfig(realtime=True))
    results = list(stream.results())
    assert stream.policy == "latest" and 1 <= len(results) <= 6
    assert stream._feed.pace_fps == pytest.approx(100.0)


def test_runner_is_single_use_and_size_checked(onnx_runner, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 2)
    stream = StreamRunner(onnx_runner, str(video))
    stream.run()
    with pytest.raises(RuntimeError, match="runs once"):
        stream.run()
    with pytest.raises(FcnEdgeError, match="fixed input size"):
        StreamRunner(onnx_runner, str(video), config=RunConfig(size=(128, 128)))
