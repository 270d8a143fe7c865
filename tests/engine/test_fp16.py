"""FP32 -> FP16 ONNX (TensorRT 11's FP16 road) by onnxconverter-common, checked with ONNX Runtime on CPU.

ONNX Runtime's CPU provider on x86 has no float16 kernels for Conv, ConvTranspose,
MaxPool, Relu, Add, Mul, Softmax, ReduceMax or ArgMax: it inserts Casts and runs them
in float32.  So these runs check the converted graph (types, block list, casts) and the
weights rounded to float16, not float16 arithmetic, which needs a GPU.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fcn_edge.engine.fp16 import block_list, convert_to_fp16, write_fp16_onnx
from fcn_edge.engine.onnx_info import read_onnx_facts
from fcn_edge.errors import ArtifactError
from tests.engine.onnx_models import make_head_onnx
from tests.onnx_models import export_checkpoint

FLOAT, FLOAT16 = 1, 10


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_tiny_fcn8s_labels_agree_with_fp32(tiny_fcn8s_aligned, tmp_path):
    out = tmp_path / "fcn8s.fp16.onnx"
    report = write_fp16_onnx(tiny_fcn8s_aligned, out)
    assert report.fp16_nodes > 40 and report.float32_nodes >= 5 and report.converted_initializers > 20
    s32, s16 = _session(tiny_fcn8s_aligned), _session(out)
    # graph I/O exactly as exported
    assert [(i.name, i.type, i.shape) for i in s16.get_inputs()] == [(i.name, i.type, i.shape) for i in s32.get_inputs()]
    assert [(o.name, o.type) for o in s16.get_outputs()] == [(o.name, o.type) for o in s32.get_outputs()]
    rng = np.random.default_rng(7)
    agreement = []
    for _ in range(3):
        frames = rng.integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
        (l32, g32), (l16, g16) = s32.run(None, {"frames": frames}), s16.run(None, {"frames": frames})
        assert l16.dtype == np.uint8 and g16.dtype == np.float32
        agreement.append((l32 == l16).mean())
        scale = np.abs(g32).max()
        assert np.abs(g32 - g16).max() < 0.01 * scale
    assert min(agreement) > 0.98, agreement


def test_weights_and_compute_are_half_pre_post_stay_float(tiny_fcn8s_aligned):
    model, _ = convert_to_fp16(onnx.load(str(tiny_fcn8s_aligned)))
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert all(inits[n.input[1]].data_type == FLOAT16 for n in convs if n.input[1] in inits)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.value_info) + list(model.graph.output)}
    assert all(types.get(n.output[0]) == FLOAT16 for n in convs)
    # pre-processing (uint8 -> float32 normalisation) and post-processing (ArgMax) stay float32
    argmax = next(n for n in model.graph.node if n.op_type == "ArgMax")
    assert types[argmax.input[0]] == FLOAT
    normalise = next(n for n in model.graph.node if n.name.startswith("/pre/") and n.op_type == "Add")
    assert types[normalise.output[0]] == FLOAT
    meta = {p.key: p.value for p in model.metadata_props}
    export = json.loads(meta["fcn_edge.export"])
    assert export["precision"] == "fp16" and export["fp16_conversion"]["fp16_nodes"] > 0
    assert meta["fcn_edge.precision"] == "fp16"  # the plain key agrees (written by the exporter's apply_metadata)
    assert "onnxconverter-common" in export["fp16_conversion"]["by"]
    assert "fcn_edge.model" in meta


def test_facts_see_the_fp16_onnx(tiny_fcn8s_aligned, tmp_path):
    out = tmp_path / "x.fp16.onnx"
    write_fp16_onnx(tiny_fcn8s_aligned, out)
    assert read_onnx_facts(out).is_fp16
    assert not read_onnx_facts(tiny_fcn8s_aligned).is_fp16
    export = read_onnx_facts(out).export_info
    assert export["fp16_conversion"]["source_sha256"] == read_onnx_facts(tiny_fcn8s_aligned).sha256


def test_out_of_range_weights_are_clipped_and_counted(tmp_path):
    path = make_head_onnx(tmp_path / "h.onnx")
    model = onnx.load(str(path))
    weight = next(i for i in model.graph.initializer if i.name == "upscore.weight")
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[0] = 1e6
    array.flat[1] = 1e-9
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    converted, report = convert_to_fp16(model)
    assert report.clipped_values == 1 and report.raised_to_min == 1
    half = onnx.numpy_helper.to_array(next(i for i in converted.graph.initializer if i.name == "upscore.weight"))
    assert half.dtype == np.float16 and half.flat[0] == np.float16(65504) and half.flat[1] == np.float16(1e-7)


def test_refuses_quantized_and_conv_free_models(tmp_path):
    with pytest.raises(ArtifactError, match="already quantized"):
        convert_to_fp16(onnx.load(str(make_head_onnx(tmp_path / "q.onnx", qdq=True))))
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ArtifactError, match="no Conv"):
        convert_to_fp16(helper.make_model(graph))


def test_refuses_a_model_already_in_fp16(tiny_fcn8s_aligned):
    converted, _ = convert_to_fp16(onnx.load(str(tiny_fcn8s_aligned)))
    with pytest.raises(ArtifactError, match="already float16"):
        convert_to_fp16(converted)


def test_block_list_is_the_uint8_pre_and_post_processing(tiny_fcn8s_aligned):
    model = onnx.load(str(tiny_fcn8s_aligned))
    blocked = block_list(model)
    ends = {n.name for n in model.graph.node if n.name.startswith(("/pre/", "/post/"))}
    assert ends and blocked == ends


# ------------------------------------------------------------------ every exported variant


@pytest.fixture(scope="module")
def confidence_float16_onnx(tiny_checkpoint, tmp_path_factory):
    """labels + float16 confidence: the variant whose float16 output trips the library's own "already FP16" check."""
    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("fp16") / "conf16.onnx",
                             outputs=("labels", "confidence", "logits"), confidence_dtype="float16")


def test_the_library_alone_refuses_a_float16_confidence_output(confidence_float16_onnx):
    """Why convert_to_fp16 passes check_fp16_ready=False and checks the weights itself."""
    from onnxconverter_common import float16

    with pytest.raises(ValueError, match="already converted to float16"):
        float16.convert_float_to_float16(onnx.load(str(confidence_float16_onnx)), keep_io_types=True)


def _feeds(session, batch):
    rng = np.random.default_rng(3)
    first = session.get_inputs()[0]
    shape = [batch if not isinstance(d, int) else d for d in first.shape]
    if first.type == "tensor(uint8)":
        return {first.name: rng.integers(0, 256, shape, dtype=np.uint8)}
    return {first.name: rng.normal(0, 1, shape).astype(np.float32)}


@pytest.mark.parametrize("variant", ["tiny_onnx", "tiny_onnx_raw", "tiny_onnx_dynamic", "confidence_float16_onnx"])
def test_every_variant_converts_and_agrees_with_fp32(variant, request, tmp_path):
    """frames/raw I/O; labels, uint8/float16 confidence and logits outputs; a dynamic batch run at 3."""
    source = request.getfixturevalue(variant)
    out = tmp_path / "v.fp16.onnx"
    write_fp16_onnx(source, out)
    s32, s16 = _session(source), _session(out)
    assert [(i.name, i.type, i.shape) for i in s16.get_inputs()] == [(i.name, i.type, i.shape) for i in s32.get_inputs()]
    assert [(o.name, o.type, o.shape) for o in s16.get_outputs()] == [(o.name, o.type, o.shape) for o in s32.get_outputs()]
    feeds = _feeds(s32, batch=3)
    names = [o.name for o in s32.get_outputs()]
    for name, a, b in zip(names, s32.run(None, feeds), s16.run(None, feeds)):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if name == "labels":
            assert (a == b).mean() > 0.98, name
        else:  # confidence (uint8 x 1/255 or float16) and logits: close, relative to their range
            a, b = a.astype(np.float32), b.astype(np.float32)
            assert np.abs(a - b).max() <= 0.02 * max(np.abs(a).max(), 1.0), name
    inits = {i.name: i.data_type for i in onnx.load(str(out)).graph.initializer}
    convs = [n for n in onnx.load(str(out)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and all(inits[n.input[1]] == FLOAT16 for n in convs)
