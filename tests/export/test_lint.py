"""The TensorRT lint on our exports and on deliberately bad graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fcn_edge.errors import ArtifactError
from fcn_edge.export import lint_onnx
from fcn_edge.export.trt_ops import TARGETS, TRT8_SUPPORTED, TRT10_SUPPORTED


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _codes(report, severity=None):
    return {i.code for i in report.issues if severity is None or i.severity == severity}


def _by_target(model, targets=("trt8", "trt10")):
    return {r.target: r for r in lint_onnx(model, targets)}


def test_our_exports_are_clean(frames_export, dynamic_export, raw_export):
    for report in (frames_export, dynamic_export, raw_export):
        for lint in lint_onnx(report.path, ("trt8", "trt10", "trt11")):
            assert lint.ok and not lint.warnings, (report.path.name, lint.lines())
    dyn = lint_onnx(dynamic_export.path, ("trt8",))[0]
    assert "dynamic-dim" in _codes(dyn, "info")


def test_an_op_outside_the_supported_set_is_an_error():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                    helper.make_node("Hardmax", ["r"], ["y"], name="the_hardmax", axis=1)], [x], [y])
    reports = _by_target(model)
    errors = reports["trt8"].errors
    assert [(e.code, e.node, e.op_type) for e in errors] == [("unsupported-op", "the_hardmax", "Hardmax")]
    assert "the_hardmax" in reports["trt8"].lines()[0]
    assert reports["trt10"].ok  # TensorRT 10 parses Hardmax


def test_unknown_and_custom_ops():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    model = _model([helper.make_node("Det", ["x"], ["y"], name="det"),
                    helper.make_node("MyPlugin", ["x"], ["z"], name="plugin", domain="com.example")], [x], [y, z])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    for report in lint_onnx(model, ("trt8", "trt10")):
        assert {("unsupported-op", "det"), ("custom-op", "plugin")} <= {(e.code, e.node) for e in report.errors}


def test_uint8_rules():
    frames = helper.make_tensor_value_info("frames", TensorProto.UINT8, [1, 8, 8, 3])
    labels = helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, 8, 8])
    good = _model([helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT),
                   helper.make_node("ArgMax", ["f"], ["i"], axis=3, keepdims=0),
                   helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
                   helper.make_node("Cast", ["fi"], ["labels"], to=TensorProto.UINT8)], [frames], [labels])
    assert all(r.ok for r in lint_onnx(good))
    bad = _model([helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT),
                  helper.make_node("ArgMax", ["f"], ["i"], axis=3, keepdims=0, name="argmax"),
                  helper.make_node("Cast", ["i"], ["labels"], to=TensorProto.UINT8, name="direct_cast")],
                 [frames], [labels])
    for report in lint_onnx(bad):
        assert "uint8-internal" in _codes(report, "error")
        assert any("cast ArgMax indices to FLOAT first" in line for line in report.lines())
    inside = _model([helper.make_node("Transpose", ["frames"], ["t"], perm=[0, 3, 1, 2], name="t_u8"),
                     helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT)],
                    [frames], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert {"uint8-io", "uint8-internal"} <= _codes(lint_onnx(inside, ("trt10",))[0], "error")


def test_opset_limits():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    reports = _by_target(_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=18))
    assert "opset" in _codes(reports["trt8"], "error") and reports["trt10"].ok
    late = _by_target(_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=21), ("trt10",))
    assert "opset" in _codes(late["trt10"], "warning")


def test_doubtful_things_are_named_warnings():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    ratio = numpy_helper.from_array(np.array(0.5, np.float32), "ratio")
    model = _model([helper.make_node("Dropout", ["x", "ratio"], ["d"], name="drop6"),
                    helper.make_node("Shape", ["d"], ["s"], name="shape_at_runtime"),
                    helper.make_node("Reshape", ["d", "s"], ["y"], name="reshape")], [x], [y], [ratio])
    report = lint_onnx(model, ("trt8",))[0]
    warnings = {(w.code, w.node) for w in report.warnings}
    assert ("training-op", "drop6") in warnings and ("runtime-shape", "shape_at_runtime") in warnings


def test_maxpool_indices_and_nonzero_qdq_zero_point():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT if n != "idx" else TensorProto.INT64, None)
            for n in ("y", "idx", "dq")]
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(3, np.int8), "zp")
    model = _model([helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], name="pool"),
                    helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], name="q"),
                    helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["dq"], name="dq")],
                   [x], outs, [scale, zero])
    codes = {(e.code, e.node) for e in lint_onnx(model, ("trt10",))[0].errors}
    assert {("maxpool-indices", "pool"), ("qdq-zero-point", "q"), ("qdq-zero-point", "dq")} <= codes


def test_lint_of_missing_or_non_onnx_file(tmp_path, tiny_checkpoint):
    with pytest.raises(ArtifactError, match="does not exist"):
        lint_onnx(tmp_path / "nope.onnx")
    with pytest.raises(ArtifactError, match="PyTorch checkpoint"):
        lint_onnx(tiny_checkpoint)
    with pytest.raises(ArtifactError, match="unknown lint target"):
        lint_onnx(onnx.ModelProto(), ("trt7",))


def test_tables_cover_what_fcn_graphs_use():
    used = {"Cast", "Transpose", "Gather", "Mul", "Add", "Conv", "Relu", "MaxPool", "ConvTranspose", "Slice", "Pad",
            "ArgMax", "Softmax", "ReduceMax", "Floor", "Shape", "Div", "Sub", "Reshape", "Concat", "Squeeze",
            "QuantizeLinear", "DequantizeLinear"}
    assert used <= set(TRT8_SUPPORTED) and used <= set(TRT10_SUPPORTED)
    assert TARGETS["trt8"].max_opset == 17
    assert "UINT8" in TRT8_SUPPORTED["Cast"] and "INT64" not in TARGETS["trt8"].tensor_types
