"""run_bench through the Python API: real ONNX Runtime / PyTorch runs, a registered URL backend, TensorRT doubles.

The URL backend below is a test double registered through ``register_backend`` (the way
the Triton client joins): it proves bench has no per-backend code paths, and it can
overlap two batches so the pipelined mode runs.  The TensorRT runner is the real one
driven through the clearly marked TensorRT/CUDA doubles of tests/runtime.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from fcn_edge.bench import BenchConfig, ModelSpec, run_bench
from fcn_edge.bench.core import BenchRow, ModelResult
from fcn_edge.bench.report import BenchReport
from fcn_edge.errors import FcnEdgeError
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.runtime import (IOSpec, InferenceResult, PendingInference, Runner, TensorSpec, register_backend,
                              unregister_backend)


class OverlappingDoubleRunner(Runner):
    """Test double: labels = first channel % classes, two batches in flight, reports 'server' time and GPU memory."""

    backend = "double"
    max_in_flight = 2
    timing_notes = {"server": "time the double pretends its server spent"}
    opened: list[dict] = []

    def __init__(self, url, *, classes: int = 5, delay_ms: float = 1.0):
        super().__init__()
        self.model_path = str(url)
        self.info = ModelInfo(arch="fcn8s", num_classes=classes)
        self.io = IOSpec("frames", TensorSpec("frames", "uint8", (None, 16, 24, 3), "NHWC"),
                         (TensorSpec("labels", "uint8", (None, 16, 24), "NHW"),), size=(16, 24), batch=None,
                         max_batch=4)
        self.delay = delay_ms / 1000.0
        self.outstanding = 0
        self.peak_outstanding = 0
        OverlappingDoubleRunner.opened.append({"url": str(url), "classes": classes, "runner": self})

    def submit(self, batch):
        frames = self.prepare_input(batch)
        self.outstanding += 1
        self.peak_outstanding = max(self.peak_outstanding, self.outstanding)
        if self.outstanding > self.max_in_flight:
            raise RuntimeError("too many in flight")
        started = time.perf_counter()

        def collect():
            time.sleep(self.delay)
            self.outstanding -= 1
            labels = (frames[..., 0] % self.info.num_classes).astype(np.uint8)
            return InferenceResult(labels, timings={"server": self.delay * 1000,
                                                    "infer": (time.perf_counter() - started) * 1000})
        return PendingInference(collect)

    def _run(self, batch):  # pragma: no cover - submit is overridden
        return self.submit(batch).result()

    def device_memory(self):
        return {"bytes": 3_000_000, "parts": {"pretend": 3_000_000}, "source": "test double"}


@pytest.fixture
def double_backend():
    OverlappingDoubleRunner.opened.clear()
    register_backend("bench-double", lambda url, **options: OverlappingDoubleRunner(url, **options),
                     schemes=("benchdouble",), replace=True)
    yield "benchdouble://server:1234/fcn"
    unregister_backend("bench-double")


def test_any_registered_backend_url_is_benchmarked_with_pipelining_and_its_own_facts(double_backend):
    report = run_bench([double_backend], BenchConfig(iterations=6, warmup=1, batches=(1, 4, 8), in_flight=2,
                                                     progress=False))
    rows = {(r.batch, r.mode): r for r in report.rows}
    assert set(rows) == {(1, "sync"), (1, "pipelined"), (4, "sync"), (4, "pipelined"), (8, "sync"), (8, "pipelined")}
    assert rows[(8, "sync")].skipped and "at most 4 frames" in rows[(8, "sync")].skipped
    sync, pipe = rows[(4, "sync")], rows[(4, "pipelined")]
    assert sync.ran and pipe.ran and pipe.in_flight == 2
    assert sync.iterations == pipe.iterations == 6 and sync.warmup_iterations == 1
    assert OverlappingDoubleRunner.opened[0]["runner"].peak_outstanding == 2  # really two in flight
    assert sync.fps == pytest.approx(4 * sync.batches_per_s)
    assert sync.fps == pytest.approx(4 * 6 / sync.wall_s)
    assert sync.latency_ms["p50"] >= 1.0  # the double sleeps 1 ms per batch
    assert sync.timings_ms["server"]["p50"] == pytest.approx(1.0)
    assert sync.device_memory["bytes"] == 3_000_000 and sync.device_memory["mb"] == 3.0
    assert sync.io_bytes_per_frame == {"input": {"frames": 16 * 24 * 3}, "outputs": {"labels": 16 * 24},
                                       "in": 1152, "out": 384, "total": 1536}
    assert sync.host_memory["rss_peak_mb"] > 0
    model = report.models[0]
    assert model.backend == "double" and model.max_in_flight == 2 and model.size == (16, 24)
    assert model.timing_notes == {"server": "time the double pretends its server spent"}
    text = report.markdown()
    assert "pipelined x2" in text and "server (double): time the double pretends" in text
    assert "at most 4 frames" in text and "3 MB" in text


def test_shared_options_go_where_they_are_taken_model_options_always(double_backend, tiny_onnx):
    report = run_bench([tiny_onnx, ModelSpec(double_backend, {"classes": 7})],
                       BenchConfig(iterations=2, warmup=0, options={"threads": 1, "delay_ms": 0.0}, progress=False))
    onnx_model, double_model = report.models
    assert onnx_model.ignored_options == ["delay_ms"] and onnx_model.describe["intra_op_threads"] == 1
    assert double_model.ignored_options == ["threads"]
    assert OverlappingDoubleRunner.opened[0]["classes"] == 7
    assert any("takes no option(s) delay_ms" in note for note in report.all_notes())
    with pytest.raises(FcnEdgeError, match="takes no option 'nonsense'"):
        run_bench([ModelSpec(double_backend, {"nonsense": 1})], BenchConfig(iterations=1, progress=False))


def test_agreement_with_the_first_model_tells_same_weights_from_different_ones(tmp_path, tiny_info, tiny_onnx,
                                                                               tiny_onnx_raw, tiny_checkpoint):
    from tests.onnx_models import export_random_model

    other = export_random_model(tmp_path / "other_weights.onnx", tiny_info, seed=1)
    report = run_bench([tiny_checkpoint, tiny_onnx, tiny_onnx_raw, other],
                       BenchConfig(iterations=2, warmup=1, check_agreement=True, compare=True, progress=False))
    agreement = {r.model: r.agreement for r in report.rows}
    assert agreement["tiny_fcn8s.pt"] is None  # the reference
    for name in ("tiny.onnx", "tiny_raw.onnx"):
        assert agreement[name]["reference"] == "tiny_fcn8s.pt"
        assert agreement[name]["pixel_agreement"] >= 0.999
        assert agreement[name]["pixels"] == 64 * 96
    assert agreement["other_weights.onnx"]["pixel_agreement"] < 0.9
    rows = [r for r in report.rows if r.ran]
    first = rows[0]
    for row in rows[1:]:
        assert row.vs_first["latency_p50"] == pytest.approx(row.latency_ms["p50"] / first.latency_ms["p50"], rel=1e-2)
        assert row.vs_first["fps"] == pytest.approx(row.fps / first.fps, rel=1e-2)


def test_ratios_are_taken_against_the_first_model_at_the_same_batch_and_mode():
    config = BenchConfig(iterations=1, compare=True)
    report = BenchReport(config=config, models=[ModelResult("a", "a.onnx", 0), ModelResult("b", "b.onnx", 1)])

    def row(index, batch, p50, fps, mode="sync"):
        return BenchRow("ab"[index], index, "x", batch, mode, 1, (8, 8), latency_ms={"p50": p50}, fps=fps)

    report.rows = [row(0, 1, 10.0, 100.0), row(0, 8, 40.0, 200.0), row(1, 1, 5.0, 200.0), row(1, 8, 80.0, 100.0),
                   row(1, 8, 20.0, 400.0, mode="pipelined")]
    report.compute_ratios()
    b1, b8, b8p = report.rows[2:]
    assert b1.vs_first == {"reference": "a", "latency_p50": 0.5, "fps": 2.0}
    assert b8.vs_first == {"reference": "a", "latency_p50": 2.0, "fps": 0.5}
    assert b8p.vs_first["latency_p50"] is None and "no result" in b8p.vs_first["note"]
    assert report.rows[0].vs_first is None
    table = report.markdown()
    assert "| b | x | 1 | sync |" in table and "| 0.50 | 2.00 |" in table


def test_a_tensorrt_engine_reports_event_timings_device_memory_and_pipelines(monkeypatch, tmp_path, tiny_info):
    """The real TensorRTRunner over the TensorRT/CUDA test doubles of tests/runtime (no GPU here)."""
    from fcn_edge.runtime import tensorrt_backend
    from tests.runtime.test_tensorrt_flow import FakeCuda, fake_tensorrt

    cuda = FakeCuda()
    monkeypatch.setattr(tensorrt_backend, "require", lambda name, purpose=None: fake_tensorrt(cuda))
    monkeypatch.setattr(tensorrt_backend, "open_cuda", lambda binding, device_id: cuda)
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"serialized engine")
    report = run_bench([ModelSpec(str(engine), {"info": tiny_info})],
                       BenchConfig(iterations=4, warmup=1, batches=(1, 4, 5), in_flight=2, progress=False))
    rows = {(r.batch, r.mode): r for r in report.rows}
    assert rows[(5, "sync")].skipped and "at most 4" in rows[(5, "sync")].skipped
    pipe = rows[(4, "pipelined")]
    assert pipe.ran and pipe.in_flight == 2 and pipe.iterations == 4
    assert {"h2d", "compute", "d2h", "infer"} <= set(pipe.timings_ms)
    memory = rows[(1, "sync")].device_memory
    assert memory["parts"] == {"io_buffers": 2 * (4 * 8 * 8 * 3 + 4 * 8 * 8 * 8), "engine_file": 17}
    assert memory["bytes"] == sum(memory["parts"].values())
    assert rows[(1, "sync")].io_bytes_per_frame["out"] == 8 * 8 * 8  # int64 labels as the engine declares them
    assert "compute (tensorrt): GPU time of execute_async_v3" in report.markdown()
    assert cuda.memory == {}  # the runner was closed


def test_nothing_runnable_is_one_error_with_the_reason(tiny_onnx):
    with pytest.raises(FcnEdgeError, match="nothing could be benchmarked: .*static batch of 1"):
        run_bench([tiny_onnx], BenchConfig(iterations=1, batches=(2,), progress=False))
    with pytest.raises(FcnEdgeError, match="fixed input size of 64x96"):
        run_bench([tiny_onnx], BenchConfig(iterations=1, size=(32, 32), progress=False))


def test_keep_going_records_a_model_that_cannot_open(tiny_onnx, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    report = run_bench([tiny_onnx, broken], BenchConfig(iterations=1, warmup=0, keep_going=True, progress=False))
    assert report.models[1].error and "is not an ONNX model" in report.models[1].error
    assert [r.ran for r in report.rows] == [True, False]
    assert "broken.onnx (batch 1): could not open: " in report.markdown()
    assert "broken.onnx is not an ONNX model" in report.markdown()
    with pytest.raises(FcnEdgeError, match="is not an ONNX model"):
        run_bench([tiny_onnx, broken], BenchConfig(iterations=1, warmup=0, progress=False))


def test_agreement_on_real_frames_says_what_it_was_measured_on(tmp_path, tiny_info, tiny_onnx):
    """--images: every frame read (not one noise batch) counts, and the table says which frames."""
    from fcn_edge.bench.command import build_config
    from fcn_edge.cli import build_parser
    from tests.onnx_models import export_random_model, write_images

    other = export_random_model(tmp_path / "other_weights.onnx", tiny_info, seed=1)
    folder = tmp_path / "frames"
    write_images(folder, 5)
    config = build_config(build_parser().parse_args(
        ["bench", str(tiny_onnx), str(other), "--iterations", "1", "--warmup", "0",
         "--check-agreement", "--compare", "--images", str(folder)]))
    report = run_bench([tiny_onnx, other], BenchConfig(**{**config.__dict__, "progress": False}))
    agreement = [r.agreement for r in report.rows if r.model == "other_weights.onnx"][0]
    assert agreement["pixels"] == 5 * 64 * 96     # all five frames, not one timed batch
    assert agreement["frames"] == f"5 frame(s) from {folder}"
    assert 0.0 <= agreement["pixel_agreement"] < 0.9
    text = report.markdown()
    assert "agreement (real frames)" in text and f"measured on 5 frame(s) from {folder}" in text

    synthetic = run_bench([tiny_onnx, other], BenchConfig(iterations=1, warmup=0, check_agreement=True,
                                                          compare=True, progress=False))
    assert "agreement (synthetic frames)" in synthetic.markdown()
    assert "synthetic noise frame(s)" in [r.agreement for r in synthetic.rows if r.agreement][0]["frames"]
