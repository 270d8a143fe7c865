"""Graph passes: opset 18 -> 17 rewrite, INT32 index constants, FP16 weight storage."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fcn_edge.export import passes


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _opset18_graph():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 1, 7])
    inits = [numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 3, 2], np.int64), "pads"),
             numpy_helper.from_array(np.array([2], np.int64), "axes"),
             numpy_helper.from_array(np.array([0, 1], np.int64), "starts"),
             numpy_helper.from_array(np.array([1, 9223372036854775807], np.int64), "ends"),
             numpy_helper.from_array(np.array([0, 3], np.int64), "slice_axes"),
             numpy_helper.from_array(np.array([1, 0], np.int64), "idx")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
             helper.make_node("ReduceMax", ["p", "axes"], ["m"], keepdims=1, name="rmax"),
             helper.make_node("Gather", ["m", "idx"], ["g"], axis=1, name="gather"),
             helper.make_node("Slice", ["g", "starts", "ends", "slice_axes"], ["y"], name="slice")]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def test_downgrade_to_17_keeps_results():
    model = _opset18_graph()
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 6)).astype(np.float32)
    before = _run(model, {"x": x})[0]
    passes.downgrade_opset(model, 17)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    rmax = next(n for n in model.graph.node if n.op_type == "ReduceMax")
    assert list(rmax.input) == ["p"] and helper.get_attribute_value(rmax.attribute[-1]) == [2]
    np.testing.assert_array_equal(_run(model, {"x": x})[0], before)


def test_downgrade_refuses_what_it_cannot_rewrite():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2])
    ys = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a", "b")]
    model = helper.make_model(helper.make_graph([helper.make_node("Split", ["x"], ["a", "b"], axis=0, num_outputs=2)],
                                                "g", [x], ys), opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(passes.GraphPassError, match="--opset 18"):
        passes.downgrade_opset(model, 17)


def test_narrow_index_constants_to_int32():
    model = _opset18_graph()
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 6)).astype(np.float32)
    before = _run(model, {"x": x})[0]
    assert passes.narrow_index_constants(model) == 2  # the Gather and the Slice
    kinds = {i.name: i.data_type for i in model.graph.initializer}
    assert kinds["idx__int32"] == kinds["ends__int32"] == TensorProto.INT32
    assert kinds["pads"] == TensorProto.INT64  # Pad's pads are not an index input: left alone
    assert "idx" not in kinds  # the INT64 originals are gone
    np.testing.assert_array_equal(_run(model, {"x": x})[0], before)


def test_store_weights_fp16_adds_casts_and_keeps_results():
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")  # < 16 elements: stays fp32
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
                                                "g", [x], [y], [w, b]), opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    feed = {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    before = _run(model, feed)[0]
    converted, saved = passes.store_weights_fp16(model)
    onnx.checker.check_model(model, full_check=True)
    assert (converted, saved) == (1, 8 * 27 * 2)
    kinds = {i.name: i.data_type for i in model.graph.initializer}
    assert kinds == {"w__fp16": TensorProto.FLOAT16, "b": TensorProto.FLOAT}
    assert model.graph.node[0].op_type == "Cast"
    np.testing.assert_allclose(_run(model, feed)[0], before, atol=1e-2)


def test_pin_ir_version_to_the_lowest_the_opset_needs():
    model = _opset18_graph()
    model.ir_version = 14  # what onnx 1.23 writes by default; ONNX Runtime 1.30 refuses it
    assert passes.pin_ir_version(model) == 8
    opset17 = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[helper.make_opsetid("", 17)])
    assert passes.pin_ir_version(opset17) == 8
    old = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[helper.make_opsetid("", 13)], ir_version=6)
    assert passes.pin_ir_version(old) == 6  # never raised
