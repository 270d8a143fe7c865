"""benchmarks/update_results.py (generated blocks between markers) and benchmarks/gpu_compare.py (reduced run)."""

from __future__ import annotations

import json

import pytest

from benchmarks import update_results
from benchmarks._machine import write_result

PROSE = "Hand-written interpretation that must survive."


def _write(folder, name, payload):
    return write_result(name, payload, folder)


def test_blocks_between_markers_are_regenerated_and_prose_is_kept(tmp_path):
    results = tmp_path / "results"
    _write(results, "metrics_update", {"what": "ConfusionMatrix.update", "shape": [4, 8], "classes": 3,
                                       "goal_ms": 30.0, "by_dtype": {"uint8": {"median_ms": 1.5, "min_ms": 1.0,
                                                                               "max_ms": 2.0, "runs": 3}}})
    md = tmp_path / "RESULTS.md"
    md.write_text(f"# Results\n\n## Metrics\n\n{PROSE}\n\n<!-- results:metrics_update -->\nstale table\n"
                  f"<!-- /results:metrics_update -->\n\nMore prose after.\n\n"
                  "<!-- results:runner_efficiency -->\nkept: no JSON for it\n<!-- /results:runner_efficiency -->\n")
    assert update_results.main(["--results", str(results), "--file", str(md), "--check"]) == 1
    assert update_results.main(["--results", str(results), "--file", str(md)]) == 0
    text = md.read_text()
    assert PROSE in text and "More prose after." in text and "stale table" not in text
    assert "| uint8 | 1.50 | 1.00 | 2.00 | 3 |" in text
    assert "`results/metrics_update.json` (" in text and "logical CPUs" in text  # the machine line
    assert "kept: no JSON for it" in text  # a formatter whose file is missing leaves its block alone
    assert update_results.main(["--results", str(results), "--file", str(md), "--check"]) == 0  # idempotent


def test_new_results_get_a_section_and_unknown_ones_are_skipped(tmp_path, capsys):
    results = tmp_path / "results"
    _write(results, "model_fullsize", {"parameters": {"fcn8s": 134489759}, "forward": []})
    _write(results, "something_new", {"figure": 1})
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n")
    update_results.main(["--results", str(results), "--file", str(md)])
    text = md.read_text()
    assert "## Full-size models" in text and "| fcn8s | 134,489,759 |" in text
    assert "<!-- results:model_fullsize -->" in text and "something_new" not in text
    assert "something_new: no formatter" in capsys.readouterr().err


def test_any_result_holding_a_bench_report_gets_the_bench_table(tmp_path, tiny_onnx):
    from fcn_edge.bench import BenchConfig, run_bench

    report = run_bench([tiny_onnx], BenchConfig(iterations=2, warmup=0, progress=False))
    results = tmp_path / "results"
    _write(results, "my_bench", {"command": "python benchmarks/my_bench.py", "bench": report.to_dict()})
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n")
    update_results.main(["--results", str(results), "--file", str(md)])
    text = md.read_text()
    assert "`python benchmarks/my_bench.py` -> `results/my_bench.json`" in text
    assert "| tiny.onnx | 1 | sync | 64x96 | 2 |" in text and "Latency: host wall time of one runner.infer" in text


def test_gpu_compare_reduced_run_end_to_end(tmp_path, capsys):
    """The GPU script on a CPU with a 1/16-width model: PyTorch and ONNX Runtime run, TensorRT says why not."""
    from benchmarks import gpu_compare

    pytest.importorskip("onnxruntime")
    results = tmp_path / "results"
    assert gpu_compare.main(["--device", "cpu", "--width", "0.0625", "--size", "64x64", "--batches", "1,2",
                             "--iterations", "2", "--warmup", "1", "--trt", "fp16,int8",
                             "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "(reduced run, not the GPU comparison)" in out
    assert "| PyTorch eager FP32 | torch | 2 | sync | 64x64 | 2 |" in out
    assert "| ONNX Runtime CPU EP | onnxruntime | 1 | sync | 64x64 | 2 |" in out
    assert "PyTorch eager FP16 (batches 1, 2): could not open: precision fp16 needs device='cuda'" in out
    data = json.loads((results / "gpu_compare.json").read_text())
    assert data["benchmark"] == "gpu_compare" and data["machine"]["logical_cpus"]
    assert data["full_run"] is False and data["export"]["verify"] is False
    status = {v["label"]: v["status"] for v in data["variants"]}
    assert status["PyTorch eager FP32"] == "measured" and status["ONNX Runtime CPU EP"] == "measured"
    assert status["PyTorch eager FP16"] == "not run"
    trt_rows = [r for r in data["bench"]["rows"] if r["model"].startswith("TensorRT")]
    if data["tensorrt"].get("status") == "TensorRT not installed":
        assert status["TensorRT FP16"] == status["TensorRT INT8"] == "not run"
        assert trt_rows and all(r["skipped"] == "TensorRT not installed" for r in trt_rows)
    agreement = [r["agreement"] for r in data["bench"]["rows"] if r["model"] == "ONNX Runtime CPU EP" and r["agreement"]]
    assert agreement and agreement[0]["pixel_agreement"] >= 0.999
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n")
    update_results.main(["--results", str(results), "--file", str(md)])
    assert "**Reduced run** (device cpu, 64x64" in md.read_text()


def test_demo_summary_block_quotes_stages_variants_and_the_int8_check():
    """benchmarks/demo_summary.py's RESULTS.md block: what README's demo table and INT8 row quote."""
    from benchmarks.demo_summary import results_markdown

    data = {"demo_command": "fcn-edge demo", "wall_seconds": 146.2, "load_before": [1.0, 1.0, 1.0], "summary": {
        "total_seconds": 144.9,
        "steps": [{"name": "train FCN-8s", "seconds": 111.04, "reused": False}],
        "variants": [{"name": "ONNX INT8", "metrics": {"mean_iu": 0.9119, "pixel_accuracy": 0.9782},
                      "agreement": 0.9986, "latency_ms": {"p50": 8.17, "p95": 10.53}, "fps": 114.0}],
        "calibration": {"tensorrt": {"output": "fcn8s.int8.onnx", "mean_iu_drop_points": 0.02, "agreement": 0.998}},
        "skipped": [{"name": "TensorRT FP16", "reason": "TensorRT is not installed"}]}}
    text = "\n".join(results_markdown(data))
    assert "146.2 s wall" in text and "| train FCN-8s | 111.0 |" in text
    assert "| ONNX INT8 | 91.19 | 97.82 | 99.86 | 8.17 | 10.53 | 114.0 |" in text
    assert "fcn8s.int8.onnx, tensorrt Q/DQ placement, ONNX Runtime CPU, val images): mean IU change -0.02 points, " \
           "pixel agreement 99.80 %" in text
    assert "skipped TensorRT FP16: TensorRT is not installed" in text
