"""The demo report renders the same numbers in Markdown, HTML and JSON."""

from __future__ import annotations

import json

from fcn_edge.demo.report import render_markdown, write_report


def _summary():
    return {
        "fcn_edge_version": "0.1.0", "created": "2026-11-25T12:00:00Z", "machine": {"processor": "test cpu"},
        "dataset": {"train": 10, "val": 4, "size": "64x64", "num_classes": 3, "class_names": ["bg", "a", "b"]},
        "training": {"arch": "fcn8s", "width": 0.125, "parameters": 1234, "iterations": 50, "seconds": 12.0},
        "variants": [
            {"name": "PyTorch FP32", "backend": "torch", "precision": "fp32", "file_bytes": 2_000_000,
             "metrics": {"mean_iu": 0.9123, "pixel_accuracy": 0.97, "mean_accuracy": 0.95, "fw_iu": 0.94},
             "agreement": 1.0, "latency_ms": {"p50": 10.0, "p95": 12.5}, "fps": 80.0},
            {"name": "ONNX INT8", "backend": "onnxruntime", "precision": "int8",
             "metrics": {"mean_iu": 0.9051, "pixel_accuracy": 0.969, "mean_accuracy": 0.949, "fw_iu": 0.939},
             "agreement": 0.991, "latency_ms": {"p50": 5.0, "p95": 6.0}, "fps": 150.0},
        ],
        "skipped": [{"name": "TensorRT FP16", "reason": "TensorRT is not installed"}],
        "steps": [{"name": "train", "seconds": 12.0, "reused": False}],
    }


def test_markdown_has_every_variant_and_the_skips():
    text = render_markdown(_summary(), "plot.png")
    assert "| PyTorch FP32 | torch | fp32 | 91.23 | 97.00 | 95.00 | 94.00 | 100.00 | 10.00 | 12.50 | 80.0 | 2.00 |" in text
    assert "| ONNX INT8 | onnxruntime | int8 | 90.51 |" in text and "99.10" in text
    assert "TensorRT FP16**: TensorRT is not installed" in text
    assert "![latency vs accuracy](plot.png)" in text


def test_write_report_files(tmp_path):
    paths = write_report(_summary(), tmp_path)
    assert json.loads(paths["summary"].read_text())["variants"][1]["fps"] == 150.0
    html = paths["html"].read_text()
    assert "<td>ONNX INT8</td>" in html and "data:image/png;base64," in html  # the plot is embedded
    assert (tmp_path / "latency_accuracy.png").stat().st_size > 1000
    assert "n/a" in render_markdown({"variants": [{"name": "x", "metrics": {}}]}, None)


def test_the_latency_axis_holds_every_point():
    """The README demo's points (3.06 to 13.8 ms): the axis used to end at 10 ms with two points beyond."""
    import pytest

    plt = pytest.importorskip("matplotlib.pyplot", reason="matplotlib is not installed (pip install 'fcn-edge[plot]')")
    from fcn_edge.demo.report import latency_accuracy_figure

    points = [("PyTorch FP32", 11.4, 0.9122), ("ONNX FP32", 3.06, 0.9122), ("ONNX INT8", 8.17, 0.9119),
              ("ONNX INT8 (CPU layout)", 13.8, 0.9101)]
    fig, ax = latency_accuracy_figure(plt, points)
    try:
        low, high = ax.get_xlim()
        assert low < 3.06 and high > 13.8
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert min(ticks) <= 3.06 and max(ticks) >= 13.8   # labelled ticks on both sides of the points
        assert all(low < x < high for x in ax.collections[0].get_offsets()[:, 0].tolist() +
                   [c.get_offsets()[0, 0] for c in ax.collections])
    finally:
        plt.close(fig)
