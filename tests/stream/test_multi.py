"""Several sources through one runner: batching, a source dying mid-run, per-source stats, CLI and API."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from fcn_edge.api import Segmenter
from fcn_edge.errors import SourceError
from fcn_edge.runtime import InferenceResult, Runner, open_runner
from fcn_edge.stream import ReconnectPolicy, RunConfig, SourceOptions
from fcn_edge.stream.multi import BatchConfig, MultiStreamRunner, plan_batches
from fcn_edge.stream.sinks import CallbackSink, SinkError
from tests.conftest import assert_one_line_error
from fcn_edge.data.synth import count_video_frames
from tests.onnx_models import export_checkpoint, write_video
from tests.stream.mjpeg_server import MjpegServer


class CountingRunner(Runner):
    """Test double: a real runner that records the batch size of every call."""

    backend = "counting"

    def __init__(self, inner: Runner) -> None:
        super().__init__()
        self.inner = inner
        self.model_path, self.info, self.io = inner.model_path, inner.info, inner.io
        self.sizes: list[int] = []

    def _run(self, batch: np.ndarray) -> InferenceResult:
        self.sizes.append(len(batch))
        return self.inner.infer(batch)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    return [write_video(folder / f"cam{i}.mp4", count=n, size=(120, 160)) for i, n in enumerate((16, 16, 10))]


@pytest.fixture(scope="module")
def tiny_onnx_b4(tmp_path_factory, tiny_checkpoint):
    """Static batch of 4 (frames in, labels out)."""
    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny_b4.onnx", batch=4)


def _network(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (96, 64), interpolation=cv2.INTER_LINEAR)


def test_plan_follows_the_models_batch_axis(tiny_onnx, tiny_onnx_dynamic, tiny_onnx_b4):
    with open_runner(tiny_onnx_dynamic) as dynamic, open_runner(tiny_onnx) as single, open_runner(tiny_onnx_b4) as b4:
        assert plan_batches(dynamic.io, 3, None) == plan_batches(dynamic.io, 3, None)
        assert (plan_batches(dynamic.io, 3, None).size, plan_batches(dynamic.io, 3, None).mode) == (3, "batched")
        assert plan_batches(dynamic.io, 12, None).size == 8          # the model's largest batch
        assert plan_batches(dynamic.io, 3, 2).size == 2              # --max-batch
        seq = plan_batches(single.io, 3, None)
        assert (seq.size, seq.mode) == (1, "sequential") and "--dynamic batch" in seq.reason
        padded = plan_batches(b4.io, 2, None)
        assert (padded.size, padded.pad_to, padded.mode) == (2, 4, "batched")


def test_frames_of_several_files_are_batched_in_order_with_per_source_stats(tiny_onnx_dynamic, videos):
    with open_runner(tiny_onnx_dynamic, intra_op_threads=1) as inner:
        runner = CountingRunner(inner)
        seen: dict[int, list] = {0: [], 1: [], 2: []}
        stream = MultiStreamRunner(runner, [str(v) for v in videos], config=RunConfig(warmup=0),
                                   batch=BatchConfig(timeout_ms=50))
        for result in stream.results():
            seen[result.source_id].append(result)
        stats = stream.stats
        # every frame of every file, each source in its own order
        assert [len(seen[i]) for i in range(3)] == [16, 16, 10]
        assert all([r.index for r in seen[i]] == list(range(len(seen[i]))) for i in range(3))
        # frames of different sources went through the model together
        assert max(runner.sizes) == 3 and sum(runner.sizes) == 42
        assert stats.batches == len(runner.sizes) < 42 and stats.mean_batch > 1.5
        # a batched result is the same as running that frame alone
        sample = seen[1][5]
        alone = inner.infer(_network(sample.image)[None])
        np.testing.assert_array_equal(alone.labels[0], sample.network_labels)
        assert "batch_wait" in sample.timings and sample.timings["batch_wait"] >= 0
    data = stats.to_dict()
    assert [s["source_id"] for s in data["sources"]] == [0, 1, 2]
    assert [s["frames"]["processed"] for s in data["sources"]] == [16, 16, 10]
    assert all(s["stop_reason"] == "end-of-source" for s in data["sources"])
    assert data["sources"][2]["source"]["source"].endswith("cam2.mp4")
    assert data["total"]["frames"]["processed"] == 42 and data["total"]["latency_ms"]["end_to_end"]["count"] == 42
    assert data["batching"]["mode"] == "batched" and sum(int(k) * v for k, v in data["batching"]["batch_sizes"].items()) == 42
    lines = stats.summary_lines()
    assert lines[0].startswith("3 sources, batched") and any(line.startswith("total: 42 processed") for line in lines)


def test_static_batch_one_model_runs_the_sources_one_after_another(tiny_onnx, videos, caplog):
    with open_runner(tiny_onnx, intra_op_threads=1) as inner, caplog.at_level(logging.WARNING, "fcn_edge"):
        runner = CountingRunner(inner)
        stats = MultiStreamRunner(runner, [str(videos[0]), str(videos[2])], config=RunConfig(warmup=0)).run()
    assert set(runner.sizes) == {1} and stats.total.frames_processed == 26
    assert stats.plan.mode == "sequential"
    assert any("one after another" in r.getMessage() for r in caplog.records)


def test_static_batch_model_gets_padded_batches(tiny_onnx_b4, videos):
    with open_runner(tiny_onnx_b4, intra_op_threads=1) as inner:
        runner = CountingRunner(inner)
        results = list(MultiStreamRunner(runner, [str(videos[0]), str(videos[1])], config=RunConfig(warmup=0),
                                         batch=BatchConfig(timeout_ms=50)).results())
        assert set(runner.sizes) == {4}  # always the model's batch; the padding is dropped
        assert len(results) == 32
        sample = results[7]
        np.testing.assert_array_equal(inner.infer(np.repeat(_network(sample.image)[None], 4, 0)).labels[0],
                                      sample.network_labels)


def test_a_source_that_dies_does_not_stop_the_others(tiny_onnx_dynamic, tmp_path):
    long_video = write_video(tmp_path / "long.mp4", count=40, size=(120, 160))
    with open_runner(tiny_onnx_dynamic, intra_op_threads=1) as runner, \
            MjpegServer(fps=50, frames_per_connection=6) as server:
        config = RunConfig(warmup=0, reconnect=ReconnectPolicy(max_attempts=1, initial_delay=0.02, max_delay=0.05))
        stream = MultiStreamRunner(runner, [server.url, str(long_video)], config=config,
                                   source_options=SourceOptions(read_timeout=1.0),
                                   batch=BatchConfig(timeout_ms=20))
        counts = {0: 0, 1: 0}
        server_stopped = False
        with pytest.raises(SourceError, match="was lost"):
            for result in stream.results():
                counts[result.source_id] += 1
                if counts[0] >= 3 and not server_stopped:
                    server.stop()  # the camera disappears for good; reconnecting fails
                    server_stopped = True
    data = stream.stats.to_dict()
    camera, video = data["sources"]
    assert camera["stop_reason"] == "source-lost" and camera["error"] and camera["frames"]["processed"] >= 3
    assert video["stop_reason"] == "end-of-source" and video["frames"]["processed"] == 40 == counts[1]
    assert data["total"]["frames"]["processed"] == counts[0] + counts[1]


def test_a_slow_camera_does_not_hold_back_a_fast_source(tiny_onnx_dynamic, tmp_path):
    video = write_video(tmp_path / "fast.mp4", count=24, size=(120, 160))
    with open_runner(tiny_onnx_dynamic, intra_op_threads=1) as inner, MjpegServer(fps=4) as server:
        runner = CountingRunner(inner)
        stream = MultiStreamRunner(runner, [server.url, str(video)], config=RunConfig(warmup=0),
                                   batch=BatchConfig(timeout_ms=5))
        for result in stream.results():
            if result.source_id == 1 and stream.lanes[1].stats.frames_processed == 24:
                stream.stop("done")
    lanes = stream.stats.lanes
    assert lanes[1].frames_processed == 24
    # the video did not wait for the 4-FPS camera: most calls carried its frame alone
    assert lanes[0].frames_processed < 24 and runner.sizes.count(1) > runner.sizes.count(2)


def test_max_frames_counts_per_source(tiny_onnx_dynamic, videos):
    with open_runner(tiny_onnx_dynamic, intra_op_threads=1) as runner:
        stats = MultiStreamRunner(runner, [str(videos[0]), str(videos[2])],
                                  config=RunConfig(warmup=0, max_frames=5)).run()
    assert [lane.frames_processed for lane in stats.lanes] == [5, 5]
    assert all(lane.stop_reason == "max-frames" for lane in stats.lanes)


def test_sinks_are_per_source(tiny_onnx_dynamic, videos):
    written: dict[int, int] = {0: 0, 1: 0}

    def sink_for(i):
        def count(result, rendered):
            assert result.source_id == i
            written[i] += 1
        return [CallbackSink(count)]

    with open_runner(tiny_onnx_dynamic, intra_op_threads=1) as runner:
        MultiStreamRunner(runner, [str(videos[0]), str(videos[2])], config=RunConfig(warmup=0),
                          sinks=[sink_for(0), sink_for(1)]).run()
    assert written == {0: 16, 1: 10}


def test_cli_several_sources_write_one_video_each_and_stats_sections(run_cli, tiny_onnx_dynamic, videos, tmp_path):
    stats = tmp_path / "stats.json"
    completed = run_cli("run", tiny_onnx_dynamic, "--source", videos[0], "--source", videos[2],
                        "--sink", tmp_path / "out_{i}.avi", "--stats-json", stats, "--batch-timeout-ms", "20",
                        "--threads", "1")
    assert completed.returncode == 0, completed.stderr
    assert count_video_frames(tmp_path / "out_0.avi") == 16 and count_video_frames(tmp_path / "out_1.avi") == 10
    data = json.loads(stats.read_text())
    assert [s["frames"]["processed"] for s in data["sources"]] == [16, 10]
    assert data["total"]["frames"]["processed"] == 26 and data["batching"]["batches"] >= 16
    assert "2 sources, batched" in completed.stdout and "total: 26 processed" in completed.stdout


def test_cli_one_video_file_for_several_sources_is_a_one_line_error(run_cli, tiny_onnx_dynamic, videos, tmp_path):
    completed = run_cli("run", tiny_onnx_dynamic, "--source", videos[0], "--source", videos[1],
                        "--sink", tmp_path / "out.mp4")
    assert_one_line_error(completed, "{i}")
    assert not (tmp_path / "out.mp4").exists()


def test_segmenter_streams_several_sources(tiny_onnx_dynamic, videos):
    with Segmenter.open(str(tiny_onnx_dynamic), intra_op_threads=1) as seg:
        results = list(seg.stream([str(videos[0]), str(videos[2])], batch_timeout_ms=20))
        stats = seg.last_stats
    assert sorted({r.source_id for r in results}) == [0, 1]
    assert sum(r.source_id == 1 for r in results) == 10
    assert results[0].labels.shape == (120, 160) and results[0].source in (str(videos[0]), str(videos[2]))
    assert [lane.frames_processed for lane in stats.lanes] == [16, 10]
    with Segmenter.open(str(tiny_onnx_dynamic)) as seg, pytest.raises(SinkError, match="{i}"):
        list(seg.stream([str(videos[0]), str(videos[2])], sinks=["out.mp4"]))
