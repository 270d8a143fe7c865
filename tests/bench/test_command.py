"""fcn-edge bench on the command line: real short runs of a tiny .onnx and .pt, JSON fields, errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_one_line_error


def test_short_bench_of_onnx_and_pt_with_json(run_cli, tiny_onnx_dynamic, tiny_checkpoint, tmp_path):
    out = tmp_path / "bench.json"
    completed = run_cli("bench", tiny_onnx_dynamic, tiny_checkpoint, "--iterations", "3", "--warmup", "1",
                        "--batch", "1,2", "--threads", "1", "--compare", "--check-agreement", "--json", out)
    assert completed.returncode == 0, completed.stderr
    table = completed.stdout
    assert table.startswith("| model | backend | batch | mode |")
    assert "| tiny_dynamic.onnx | onnxruntime | 1 | sync | 64x96 | 3 |" in table
    assert "| tiny_fcn8s.pt | torch | 2 | sync | 64x96 | 3 |" in table
    assert "What the numbers include:" in table and "run (onnxruntime): host wall time of session.run" in table
    assert "run (torch): host wall time of the PyTorch call" in table

    data = json.loads(out.read_text())
    assert data["schema"] == "fcn-edge.bench/1"
    assert data["config"]["iterations"] == 3 and data["config"]["batches"] == [1, 2]
    assert data["config"]["options"] == {"threads": 1}
    assert set(data["definitions"]) >= {"latency_ms", "fps", "timings_ms", "host_memory", "device_memory",
                                        "io_bytes_per_frame", "agreement", "vs_first", "timing_notes"}
    onnx_model, pt_model = data["models"]
    assert onnx_model["backend"] == "onnxruntime" and onnx_model["runner"]["intra_op_threads"] == 1
    assert pt_model["backend"] == "torch" and pt_model["runner"]["threads"] == 1
    assert "run" in pt_model["timing_notes"]
    rows = data["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [("tiny_dynamic.onnx", 1), ("tiny_dynamic.onnx", 2),
                                                        ("tiny_fcn8s.pt", 1), ("tiny_fcn8s.pt", 2)]
    for row in rows:
        assert row["skipped"] is None and row["mode"] == "sync" and row["size"] == [64, 96]
        assert row["iterations"] == 3 and row["warmup_iterations"] == 1
        lat = row["latency_ms"]
        assert lat["count"] == 3 and lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert row["fps"] == pytest.approx(row["batch"] * row["batches_per_s"], rel=1e-3)
        assert row["timings_ms"]["run"]["count"] == 3
        assert row["host_memory"]["rss_peak_mb"] > 0 and row["host_memory"]["process_max_rss_mb"] > 0
        assert row["device_memory"] == {}  # CPU backends cannot tell GPU memory
        assert row["io_bytes_per_frame"]["in"] == 64 * 96 * 3 and row["io_bytes_per_frame"]["out"] == 64 * 96
    reference = {r["batch"]: r for r in rows[:2]}
    for row in rows[2:]:
        ref = reference[row["batch"]]
        assert row["vs_first"]["reference"] == "tiny_dynamic.onnx"
        assert row["vs_first"]["latency_p50"] == pytest.approx(row["latency_ms"]["p50"] / ref["latency_ms"]["p50"], rel=2e-3)
        assert row["vs_first"]["fps"] == pytest.approx(row["fps"] / ref["fps"], rel=2e-3)
        assert row["agreement"]["pixel_agreement"] >= 0.999  # same weights, PyTorch vs ONNX Runtime


def test_per_model_options_duration_mode_and_skipped_batches(run_cli, tiny_onnx):
    completed = run_cli("bench", f"{tiny_onnx}::threads=1", "--seconds", "0.2", "--warmup-seconds", "0.05",
                        "--batch", "1,3", "--in-flight", "2")
    assert completed.returncode == 0, completed.stderr
    assert "### tiny.onnx (threads=1)" in completed.stdout
    assert "tiny.onnx (threads=1) (batch 3): tiny.onnx (threads=1) has a static batch of 1" in completed.stdout
    assert "(pipelined, batch 1): the onnxruntime backend runs one batch at a time" in completed.stdout
    assert "0.2 s of timed batches (at least 3)" in completed.stdout


def test_errors_are_one_line(run_cli, tiny_onnx, tmp_path):
    assert_one_line_error(run_cli("bench", tmp_path / "missing.onnx", "-n", "1"), "missing.onnx", "does not exist")
    assert_one_line_error(run_cli("bench", tiny_onnx, "-n", "1", "--batch", "4"),
                          "nothing could be benchmarked", "static batch of 1", "--dynamic batch")
    assert_one_line_error(run_cli("bench", tiny_onnx, "-n", "1", "--batch", "0,x"), "--batch")
    assert_one_line_error(run_cli("bench", tiny_onnx, "-n", "1", "--seconds", "2"), "--seconds")
    assert_one_line_error(run_cli("bench", tiny_onnx, "-n", "1", "--device", "cuda"), "takes no option(s) device")
    assert_one_line_error(run_cli("bench", tiny_onnx, "-n", "1", "--json", tmp_path / "no" / "x.json"),
                          "does not exist (create it first)")
    assert_one_line_error(run_cli("bench", tmp_path / "model.xyz", "-n", "1"), "cannot tell which backend")


def test_missing_backend_names_what_to_install(run_cli, tiny_onnx, tmp_path):
    """An onnxruntime that cannot be imported (a stand-in package raising ImportError, first on the path)."""
    shadow = tmp_path / "shadow" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'onnxruntime'\", name='onnxruntime')\n")
    from tests.conftest import REPO_ROOT

    completed = run_cli("bench", tiny_onnx, "-n", "1", env={"PYTHONPATH": f"{shadow.parent}:{REPO_ROOT}"})
    assert_one_line_error(completed, "onnxruntime", "fcn-edge[onnx]")
