"""Small ONNX graphs for the engine tests.

Two kinds:
* :func:`make_head_onnx`: a deliberately special, hand-made graph (onnx.helper) with the
  layers that matter to build-engine (uint8 frames -> Cast -> Transpose -> normalise ->
  Conv -> ConvTranspose -> ArgMax -> Cast -> Cast) whose upsampling kernel/stride/pad,
  batch, opset and Q/DQ are parameters, so FCN-32s's and FCN-8s's heads, DLA-illegal
  strides or a quantized graph are one call away -- shapes the exporter would never
  produce.  Milliseconds to make.  Its metadata is written by the exporter's own
  :func:`fcn_edge.export.metadata_entries`.
* :func:`export_tiny_fcn`: the real tiny FCN exported by ``fcn-edge export``'s
  :func:`fcn_edge.export.export_onnx`.  Used where the whole network matters (DLA
  pre-check of every layer, FP16 accuracy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcn_edge.artifacts.modelinfo import ModelInfo

NUM_CLASSES = 5


def export_facts(**overrides) -> dict:
    facts = {"io": "frames", "input": "frames", "outputs": ["labels", "logits"], "size": [64, 64], "batch": 1,
             "dynamic": None, "opset": 17, "geometry": "aligned", "precision": "fp32", "source_sha256": "0" * 64,
             "source_name": "tiny.pt", "fcn_edge_version": "0.1.0"}
    facts.update(overrides)
    return facts


def add_metadata(model, info: ModelInfo | None = None, export: dict | None = None) -> None:
    from fcn_edge.export import ExportFacts, apply_metadata

    info = info or ModelInfo(arch="fcn8s", num_classes=NUM_CLASSES, geometry="aligned", width=1 / 16)
    producer = model.producer_name
    apply_metadata(model, info, ExportFacts.from_dict(export or export_facts()))
    model.producer_name = producer  # a hand-made graph, not one fcn-edge exported


def make_head_onnx(path: Path, *, kernel: int = 16, stride: int = 8, pad: int = 4, size=(64, 64), batch="1",
                   opset: int = 17, metadata: bool = True, export: dict | None = None, qdq: bool = False,
                   info: ModelInfo | None = None, down: int | None = None) -> Path:
    """frames uint8 [N,H,W,3] -> labels uint8 [N,H',W'] and logits float32 [N,C,H',W'].

    The body is a 3x3 Conv, ``log2(down)`` 2x2 max-pools (``down`` defaults to the
    upsampling stride, a power of two) and the ConvTranspose upsampling under test.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    h, w = size
    n = int(batch) if str(batch).isdigit() else batch
    down = down or stride
    pools = max(0, int(round(np.log2(down))))
    conv_w = rng.normal(0, 0.1, (NUM_CLASSES, 3, 3, 3)).astype(np.float32)
    up_w = rng.normal(0, 0.1, (NUM_CLASSES, NUM_CLASSES, kernel, kernel)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([104.0, 117.0, 123.0], np.float32).reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(conv_w, "score_fr.weight"),
        numpy_helper.from_array(np.zeros(NUM_CLASSES, np.float32), "score_fr.bias"),
        numpy_helper.from_array(up_w, "upscore.weight"),
    ]
    nodes = [
        helper.make_node("Cast", ["frames"], ["frames_f"], to=TensorProto.FLOAT, name="pre/cast"),
        helper.make_node("Transpose", ["frames_f"], ["nchw"], perm=[0, 3, 1, 2], name="pre/transpose"),
        helper.make_node("Sub", ["nchw", "mean"], ["normalised"], name="pre/normalise"),
    ]
    conv_in = "normalised"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.5, np.float32), "act_scale"),
                  numpy_helper.from_array(np.array(0, np.int8), "act_zp")]
        nodes += [helper.make_node("QuantizeLinear", ["normalised", "act_scale", "act_zp"], ["q"], name="q0"),
                  helper.make_node("DequantizeLinear", ["q", "act_scale", "act_zp"], ["dq"], name="dq0")]
        conv_in = "dq"
    nodes += [
        helper.make_node("Conv", [conv_in, "score_fr.weight", "score_fr.bias"], ["pool0"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], name="score_fr"),
    ]
    for i in range(pools):
        nodes.append(helper.make_node("MaxPool", [f"pool{i}"], [f"pool{i + 1}"], kernel_shape=[2, 2], strides=[2, 2],
                                      name=f"pool{i + 1}"))
    nodes += [
        helper.make_node("ConvTranspose", [f"pool{pools}", "upscore.weight"], ["up"], kernel_shape=[kernel, kernel],
                         strides=[stride, stride], pads=[pad] * 4, name="upscore"),
    ]
    out_h = (h // down - 1) * stride + kernel - 2 * pad
    out_w = (w // down - 1) * stride + kernel - 2 * pad
    nodes += [
        helper.make_node("Identity", ["up"], ["logits"], name="post/logits"),
        helper.make_node("ArgMax", ["logits"], ["argmax"], axis=1, keepdims=0, name="post/argmax"),
        helper.make_node("Cast", ["argmax"], ["argmax_f"], to=TensorProto.FLOAT, name="post/cast_float"),
        helper.make_node("Cast", ["argmax_f"], ["labels"], to=TensorProto.UINT8, name="post/cast_uint8"),
    ]
    graph = helper.make_graph(
        nodes, "head",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, [n, h, w, 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, [n, out_h, out_w]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, NUM_CLASSES, out_h, out_w])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="fcn-edge-tests", ir_version=8)
    model.ir_version = 8
    if metadata:
        add_metadata(model, info, export or export_facts(size=[h, w], opset=opset, batch=n if isinstance(n, int) else None))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def export_tiny_fcn(path: Path, arch: str = "fcn8s", geometry: str = "aligned", size=(64, 96), seed: int = 0) -> Path:
    """The real tiny FCN (random weights, non-zero score layers) through the exporter.

    frames uint8 ``[1, H, W, 3]`` in (Caffe preprocessing in the graph), ``labels`` and
    ``logits`` out, opset 17, not verified (the exporter's own tests do that).
    """
    from tests.conftest import require_torch

    torch = require_torch()

    from fcn_edge.checkpoint import save_model
    from fcn_edge.export import ExportConfig, export_onnx
    from fcn_edge.models import build_model

    torch.manual_seed(seed)
    net = build_model(arch, NUM_CLASSES, geometry, 1 / 16).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.5)
    info = ModelInfo(arch=arch, num_classes=NUM_CLASSES, geometry=geometry, width=1 / 16, input_size=tuple(size))
    checkpoint = Path(path).with_suffix(".pt")
    save_model(checkpoint, net, info)
    export_onnx(checkpoint, path, ExportConfig(size=tuple(size), geometry=geometry, outputs=("labels", "logits"),
                                               verify=False), lint_targets=())
    return Path(path)
