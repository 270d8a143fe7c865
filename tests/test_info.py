"""fcn-edge info prints what each artifact says about itself."""

from __future__ import annotations

import json

from .conftest import assert_one_line_error


def test_info_on_checkpoint_and_onnx(run_cli, tiny_checkpoint, tiny_onnx):
    done = run_cli("info", tiny_checkpoint, tiny_onnx, check=True)
    assert "tiny_fcn8s.pt: checkpoint" in done.stdout and "5 classes" in done.stdout
    assert "input       frames uint8" in done.stdout and "precision fp32" in done.stdout
    data = json.loads(run_cli("info", "--json", tiny_onnx, check=True).stdout)
    assert data["kind"] == "onnx" and data["model"]["num_classes"] == 5
    assert data["export"]["io"] == "frames" and data["ir_version"] <= 10


def test_info_errors_are_one_line(run_cli, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    assert_one_line_error(run_cli("info", engine), "no sidecar")
    (tmp_path / "x.mp4").write_bytes(b"x")
    assert_one_line_error(run_cli("info", tmp_path / "x.mp4"), "x.mp4")
    assert_one_line_error(run_cli("info", tmp_path / "nope.onnx"), "nope.onnx")
