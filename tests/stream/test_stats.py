from __future__ import annotations

import numpy as np

from fcn_edge.stream.stats import STAGES, LatencyRecorder, StreamStats


def test_percentiles_are_exact_below_capacity():
    values = np.random.default_rng(1).exponential(10.0, 1000)
    recorder = LatencyRecorder(capacity=2000)
    for v in values:
        recorder.add(v)
    np.testing.assert_allclose(recorder.percentiles(), np.percentile(values, [50, 95, 99]))
    summary = recorder.summary()
    assert summary["count"] == 1000 and summary["max"] == round(values.max(), 3)
    assert LatencyRecorder().summary() == {"count": 0}


def test_reservoir_keeps_memory_fixed_and_percentiles_close():
    values = np.random.default_rng(2).uniform(0, 100, 50_000)
    recorder = LatencyRecorder(capacity=4096)
    for v in values:
        recorder.add(v)
    assert recorder._samples.shape == (4096,) and recorder.count == 50_000
    p50, p95, _ = recorder.percentiles()
    assert abs(p50 - 50) < 4 and abs(p95 - 95) < 2
    assert abs(recorder.total / recorder.count - values.mean()) < 1e-6


def test_stream_stats_dictionary_and_lines():
    stats = StreamStats()
    stats.start()
    for i in range(10):
        stats.record({"capture": 1.0, "preprocess": 0.5, "inference": 5.0 + i, "postprocess": 0.2,
                      "render": 1.0, "end_to_end": 9.0 + i, "backend_compute": 4.0, "other": 3.0})
    stats.frames_dropped = 4
    line = stats.interval_line()
    assert "FPS" in line and "e2e p50" in line and "dropped 4" in line
    stats.finish("end-of-source")
    data = stats.to_dict()
    assert set(STAGES) == set(data["latency_ms"])
    assert data["latency_ms"]["inference"]["count"] == 10 and data["latency_ms"]["inference"]["p50"] == 9.5
    assert data["backend_latency_ms"]["compute"]["count"] == 10
    assert data["dropped_frames"] == 4 and data["stop_reason"] == "end-of-source" and data["throughput_fps"] > 0
    lines = stats.summary_lines()
    assert lines[0].startswith("frames: 10 processed") and any(l.startswith("end_to_end") for l in lines)
