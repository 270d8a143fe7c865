"""fcn-edge export on the command line: a real export, the default output path, --lint-only, errors."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from ..conftest import assert_one_line_error


def test_export_and_lint_only(run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "cam.onnx"
    done = run_cli("export", tiny_checkpoint, "-o", out, "--size", "48x80", "--outputs", "labels,confidence",
                   "--json", tmp_path / "report.json", check=True)
    assert out.exists() and "verified: ONNX Runtime vs PyTorch" in done.stdout
    assert "labels agree on" in done.stdout and "TensorRT 8.5/8.6" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["facts"]["size"] == [48, 80] and report["facts"]["outputs"] == ["labels", "confidence"]
    lint = run_cli("export", "--lint-only", out, "--target", "all", check=True)
    assert lint.stdout.count(": OK") == 3


def test_default_output_goes_to_export_folder(run_cli, tiny_checkpoint, tmp_path):
    done = run_cli("export", tiny_checkpoint, "--no-verify", "--dynamic", "batch", cwd=tmp_path, check=True)
    assert (tmp_path / "export" / "tiny_fcn8s.onnx").exists(), done.stdout
    assert "not verified" in done.stdout and "batch 1/1/4" in done.stdout


def test_lint_only_fails_on_a_bad_graph(run_cli, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([helper.make_node("Unique", ["x"], ["y"], name="uniq")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    done = run_cli("export", "--lint-only", tmp_path / "bad.onnx")
    assert done.returncode == 1 and "FAILS" in done.stdout and "node 'uniq' (Unique)" in done.stdout


def test_missing_checkpoint(run_cli, tmp_path):
    assert_one_line_error(run_cli("export", tmp_path / "nope.pt"), "nope.pt", "does not exist")


def test_bad_options(run_cli, tiny_checkpoint, tmp_path):
    assert_one_line_error(run_cli("export", tiny_checkpoint, "--size", "big"), "--size", "HxW")
    assert_one_line_error(run_cli("export", tiny_checkpoint, "--outputs", "labels,probs"), "--outputs")
    assert_one_line_error(run_cli("export", tiny_checkpoint, "--dynamic", "channels"), "--dynamic")
    assert_one_line_error(run_cli("export", tiny_checkpoint, "--target", "trt7"), "--target")
    assert_one_line_error(run_cli("export"), "CHECKPOINT")
    assert_one_line_error(run_cli("export", tiny_checkpoint, "--opset", "12"), "opset 12", "too old")
    assert_one_line_error(run_cli("export", tiny_checkpoint, "--dynamic", "batch", "--min-shape", "2x9"), "--min-shape")


def test_unwritable_output_dir(run_cli, tiny_checkpoint, tmp_path):
    assert_one_line_error(run_cli("export", tiny_checkpoint, "-o", tmp_path / "no" / "such" / "m.onnx"),
                          "does not exist")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(run_cli("export", tiny_checkpoint, "-o", tmp_path / "file" / "m.onnx"), "not a folder")


def test_lint_only_on_non_onnx(run_cli, tiny_checkpoint):
    assert_one_line_error(run_cli("export", "--lint-only", tiny_checkpoint), "not an ONNX model", "fcn-edge export")
