"""The Q/DQ graph follows TensorRT's rules; the fixer repairs what a quantizer can get wrong."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from fcn_edge.calib.graph import find_regions, producers
from fcn_edge.calib.qdq import check_qdq_graph, fix_qdq_graph


def _const(model, name):
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise KeyError(name)


def _axis(node):
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def test_zero_points_are_int8_zero(default_calibration):
    model = onnx.load(str(default_calibration.output))
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 40
    for node in qdq:
        zero = _const(model, node.input[2])
        assert zero.dtype == np.int8 and not zero.any(), node.name
        assert np.all(_const(model, node.input[1]) > 0), node.name


def test_weights_per_channel_on_the_right_axis(all_quantized):
    model = onnx.load(str(all_quantized.output))
    prod = producers(model)
    seen = {"Conv": 0, "ConvTranspose": 0}
    for node in model.graph.node:
        if node.op_type not in seen:
            continue
        dq = prod.get(node.input[1])
        if dq is None:
            continue  # a layer kept float
        assert dq.op_type == "DequantizeLinear", node.name
        q = prod[dq.input[0]]
        weights = _const(model, q.input[0])
        scale = _const(model, dq.input[1])
        axis = 0 if node.op_type == "Conv" else 1
        assert _axis(dq) == axis and _axis(q) == axis, node.name
        assert scale.shape == (weights.shape[axis],), node.name
        # symmetric per-channel: scale = max|w| / 127 of that channel
        amax = np.abs(np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)).max(axis=1)
        np.testing.assert_allclose(scale, np.maximum(amax, 1e-30) / 127, rtol=1e-5)
        seen[node.op_type] += 1
    assert seen == {"Conv": 18, "ConvTranspose": 3}, seen


def test_no_qdq_on_graph_outputs_and_outputs_unchanged(default_calibration, trained_onnx):
    model = onnx.load(str(default_calibration.output))
    fp32 = onnx.load(str(trained_onnx))
    prod = producers(model)
    assert [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output] == \
        [(o.name, o.type.tensor_type.elem_type) for o in fp32.graph.output]
    for out in model.graph.output:
        assert prod[out.name].op_type not in ("QuantizeLinear", "DequantizeLinear"), out.name
    # logits is an output here: it comes straight from upscore8, float
    assert prod["logits"].op_type == "ConvTranspose"


def test_pre_and_post_processing_stay_float(default_calibration, trained_onnx):
    fp32 = onnx.load(str(trained_onnx))
    for i, node in enumerate(fp32.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    regions = find_regions(fp32)
    assert {fp32_node.op_type for fp32_node in fp32.graph.node if fp32_node.name in regions.pre} >= {"Cast", "Transpose"}
    assert {n.op_type for n in fp32.graph.node if n.name in regions.post} >= {"ArgMax", "Softmax", "Cast"}
    model = onnx.load(str(default_calibration.output))
    prod = producers(model)
    by_name = {n.name: n for n in model.graph.node}
    for name in regions.pre + regions.post:
        node = by_name[name]
        for tensor in node.input:
            source = prod.get(tensor)
            assert source is None or source.op_type not in ("QuantizeLinear", "DequantizeLinear"), (name, tensor)
    # the uint8 frames input feeds its Cast directly
    assert [n.op_type for n in model.graph.node if "frames" in n.input] == ["Cast"]


def test_opset_per_target(tmp_path, trained_checkpoint, synth_data):
    from fcn_edge.calib import calibrate_onnx
    from tests.calib.tiny_trained import export_tiny

    model18 = export_tiny(trained_checkpoint, tmp_path / "m18.onnx", opset=18)
    assert onnx.load(str(model18)).opset_import[0].version == 18
    for target, expected in (("trt8", 17), ("trt10", 18), ("trt11", 18)):
        out = tmp_path / f"m18.{target}.int8.onnx"
        report = calibrate_onnx(model18, synth_data, out, target=target, num_images=8, accuracy=False,
                                show_progress=False)
        opsets = {o.domain: o.version for o in onnx.load(str(out)).opset_import}
        assert opsets[""] == expected == report.opset, target
        summary = check_qdq_graph(onnx.load(str(out)), max_opset={"trt8": 17, "trt10": 20, "trt11": 24}[target])
        assert summary.ok, summary.issues


def test_check_passes_on_the_written_graph_and_metadata_says_int8(default_calibration):
    from fcn_edge.export import read_onnx_metadata

    model = onnx.load(str(default_calibration.output))
    summary = check_qdq_graph(model, max_opset=17)
    assert summary.ok, summary.issues
    assert summary.per_channel_weights == summary.weight_qdq > 0
    info, facts = read_onnx_metadata(default_calibration.output)
    assert facts.precision == "int8-qdq"
    assert facts.calibration["method"] == "entropy" and facts.calibration["images"] == default_calibration.images
    assert facts.calibration["images_sha256"] == default_calibration.images_sha256
    assert info.num_classes == 5


def test_export_lint_accepts_the_qdq_graph(default_calibration):
    from fcn_edge.export import lint_onnx

    for report in lint_onnx(str(default_calibration.output), targets=("trt8", "trt10")):
        assert report.ok, report.lines()


# --------------------------------------------------------------------------- the fixer, on hand-made graphs

def _conv_graph(*, transpose: bool, weight_axis: int, zero_point: int = 0, output_qdq: bool = False):
    """x -> Q/DQ -> Conv/ConvTranspose(W: Q/DQ) -> y  (optionally y through Q/DQ as the graph output)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4, 2, 2)).astype(np.float32)  # Conv: Cout=3; ConvTranspose: Cin=3, Cout=4
    channels = w.shape[weight_axis]
    amax = np.abs(np.moveaxis(w, weight_axis, 0).reshape(channels, -1)).max(axis=1)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array((amax / 127).astype(np.float32), "W_scale"),
        numpy_helper.from_array(np.zeros(channels, np.int8), "W_zp"),
        numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(zero_point, np.int8), "x_zp"),
        numpy_helper.from_array(np.array(0.1, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "y_zp"),
    ]
    op = "ConvTranspose" if transpose else "Conv"
    out = "y_float" if output_qdq else "y"
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="x_q"),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xdq"], name="x_dq"),
        helper.make_node("QuantizeLinear", ["W", "W_scale", "W_zp"], ["Wq"], name="w_q", axis=weight_axis),
        helper.make_node("DequantizeLinear", ["Wq", "W_scale", "W_zp"], ["Wdq"], name="w_dq", axis=weight_axis),
        helper.make_node(op, ["xdq", "Wdq"], [out], name="conv"),
    ]
    if output_qdq:
        nodes += [helper.make_node("QuantizeLinear", [out, "y_scale", "y_zp"], ["yq"], name="y_q"),
                  helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zp"], ["y"], name="y_dq")]
    cin = w.shape[1] if not transpose else w.shape[0]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, cin, 5, 5])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", "c", "h", "w"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_fixer_moves_convtranspose_weight_scales_to_axis_1():
    model = _conv_graph(transpose=True, weight_axis=0)
    issues = check_qdq_graph(model, max_opset=17).issues
    assert any(i.rule == "weight-axis" for i in issues), issues
    fixes = fix_qdq_graph(model)
    assert any("axis 1" in f for f in fixes), fixes
    assert check_qdq_graph(model, max_opset=17).ok
    dq = next(n for n in model.graph.node if n.name == "w_dq")
    assert _axis(dq) == 1 and _const(model, dq.input[1]).shape == (4,)
    x = np.random.default_rng(1).normal(size=(1, 3, 5, 5)).astype(np.float32)
    onnx.checker.check_model(model)
    float_model = _conv_graph(transpose=True, weight_axis=1)
    np.testing.assert_allclose(_run(model, x), _run(float_model, x), atol=1e-5)


def test_fixer_makes_a_nonzero_zero_point_symmetric_and_keeps_the_range():
    model = _conv_graph(transpose=False, weight_axis=0, zero_point=10)
    assert any(i.rule == "zero-point" for i in check_qdq_graph(model, max_opset=17).issues)
    fixes = fix_qdq_graph(model)
    assert any("zero point 10" in f for f in fixes), fixes
    assert check_qdq_graph(model, max_opset=17).ok
    q = next(n for n in model.graph.node if n.name == "x_q")
    scale = float(_const(model, q.input[1]))
    # the old pair covered 0.05 * ([-128, 127] - 10) = [-6.9, 5.85]: the symmetric one covers +-6.9
    assert scale == pytest.approx(6.9 / 127, rel=1e-5)
    assert not _const(model, q.input[2]).any()


def test_fixer_removes_qdq_from_a_graph_output():
    model = _conv_graph(transpose=False, weight_axis=0, output_qdq=True)
    assert any(i.rule == "output-qdq" for i in check_qdq_graph(model, max_opset=17).issues)
    fix_qdq_graph(model)
    assert check_qdq_graph(model, max_opset=17).ok
    assert producers(model)["y"].op_type == "Conv"
    onnx.checker.check_model(model)


def test_check_reports_opset_and_foreign_attributes():
    model = _conv_graph(transpose=False, weight_axis=0)
    model.opset_import[0].version = 21
    dq = next(n for n in model.graph.node if n.name == "x_dq")
    dq.attribute.append(helper.make_attribute("block_size", 0))
    rules = {i.rule for i in check_qdq_graph(model, max_opset=17).issues}
    assert {"opset", "opset13-form"} <= rules


def test_keep_float_layers_and_op_types(model_copy, synth_data):
    from fcn_edge.calib import calibrate_onnx

    report = calibrate_onnx(model_copy, synth_data, keep_float=("score_fr", "ConvTranspose"), num_images=8,
                            accuracy=False, show_progress=False)
    model = onnx.load(str(report.output))
    prod = producers(model)
    kept = set(report.excluded_nodes)
    for node in model.graph.node:
        if node.op_type == "ConvTranspose" or (node.op_type == "Conv" and node.name in kept):
            assert all(prod.get(t) is None or prod[t].op_type != "DequantizeLinear" for t in node.input), node.name
    assert report.keep_float["score_fr"] == ["score_fr"]
    assert len(report.keep_float["ConvTranspose"]) == 3
    assert check_qdq_graph(model, max_opset=17).ok


def test_unknown_keep_float_name_is_an_error_naming_the_layers(model_copy, synth_data):
    from fcn_edge.calib import calibrate_onnx
    from fcn_edge.errors import FcnEdgeError

    with pytest.raises(FcnEdgeError, match="matches no layer.*score_fr"):
        calibrate_onnx(model_copy, synth_data, keep_float=("scor_fr",), num_images=4, accuracy=False,
                       show_progress=False)


def test_older_onnxruntime_path_gives_the_same_graph(all_quantized, tmp_path, monkeypatch):
    """Without quantize_static's calibration_cache_path (ONNX Runtime < 1.26) the QDQQuantizer path is taken."""
    import json

    from fcn_edge.calib import graph as G
    from fcn_edge.calib import quantize as Q
    from fcn_edge.calib.ranges import TensorRanges

    doc = json.loads(all_quantized.ranges_json.read_text())
    ranges = TensorRanges("entropy", {k: (v["min"], v["max"]) for k, v in doc["tensors"].items()}, {}, 0, 0)
    model = onnx.load(str(all_quantized.source_onnx))
    G.ensure_node_names(model)
    model = onnx.shape_inference.infer_shapes(model)
    prepared = tmp_path / "fp32.onnx"
    onnx.save(model, str(prepared))
    regions = G.find_regions(model)
    kwargs = dict(nodes_to_exclude=regions.protected, op_types_in_graph=sorted({n.op_type for n in model.graph.node}))
    Q.quantize_with_ranges(prepared, tmp_path / "new.onnx", ranges, **kwargs)
    monkeypatch.setattr(Q, "_has_cache_argument", lambda quant: False)
    Q.quantize_with_ranges(prepared, tmp_path / "old.onnx", ranges, **kwargs)
    new, old = onnx.load(str(tmp_path / "new.onnx")), onnx.load(str(tmp_path / "old.onnx"))
    assert [(n.op_type, list(n.input)) for n in new.graph.node] == [(n.op_type, list(n.input)) for n in old.graph.node]
    assert {i.name: numpy_helper.to_array(i).tobytes() for i in new.graph.initializer} == \
        {i.name: numpy_helper.to_array(i).tobytes() for i in old.graph.initializer}


def test_onnxruntime_placement_runs_integer_convolutions(model_copy, synth_data, tmp_path):
    """--placement onnxruntime: Q/DQ also after quantized ops, so ORT's CPU optimiser makes QLinearConv."""
    import onnxruntime as ort

    from fcn_edge.calib import calibrate_onnx

    report = calibrate_onnx(model_copy, synth_data, tmp_path / "ort.int8.onnx", placement="onnxruntime",
                            keep_float=(), num_images=12, eval_images=4, sensitivity=False, show_progress=False)
    model = onnx.load(str(report.output))
    assert check_qdq_graph(model, max_opset=17).ok
    prod = producers(model)
    # logits (a graph output, and what ArgMax/Softmax read) got Q/DQ from upscore8's output quantization:
    # the fixer took it off again
    assert prod["logits"].op_type == "ConvTranspose"
    assert any("graph output logits" in f for f in report.fixes), report.fixes
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(report.output), sess_options=options, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert "QLinearConv" in ops
    assert report.accuracy.agreement > 0.97


def test_fixer_gives_pre_and_post_processing_float_inputs_back():
    """A Q/DQ pair in front of a post-processing node (ArgMax) is bypassed and dropped."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("labels", onnx.TensorProto.INT64, [1, 4, 4])
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xdq"], name="dq"),
             helper.make_node("ArgMax", ["xdq"], ["labels"], name="argmax", axis=1, keepdims=0)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    assert any(i.rule == "pre-post-float" for i in check_qdq_graph(model, max_opset=17, protected=["argmax"]).issues)
    fixes = fix_qdq_graph(model, protected=["argmax"])
    assert fixes == ["pre/post-processing reads float again: argmax"]
    assert [n.op_type for n in model.graph.node] == ["ArgMax"] and model.graph.node[0].input[0] == "x"


def test_layers_sharing_one_initializer_keep_their_module_names(trained_onnx):
    """The exporter de-duplicates identical weights (upscore2 and upscore_pool4's bilinear kernels after
    training with them frozen): the report still says upscore2, upscore_pool4, as README does."""
    from fcn_edge.calib import graph as G

    model = onnx.load(str(trained_onnx))
    G.ensure_node_names(model)
    ups = {n.name.split("/")[-2]: n for n in model.graph.node if n.op_type == "ConvTranspose"}
    ups["upscore_pool4"].input[1] = ups["upscore2"].input[1]   # one initializer for both, as in the demo's export
    regions = G.find_regions(model)
    names = [layer.name for layer in regions.layers if layer.op_type == "ConvTranspose"]
    assert names == ["upscore2", "upscore_pool4", "upscore8"]
    _, by_item = G.resolve_keep_float(model, regions, ["ConvTranspose"])
    assert [regions.layer_of(n) for n in by_item["ConvTranspose"]] == ["upscore2", "upscore_pool4", "upscore8"]
