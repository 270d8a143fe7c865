"""DLA pre-check: FCN-32s is flagged, FCN-8s aligned passes its conv/deconv layers."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fcn_edge.engine.dla import dla_precheck, unpad_deconvolutions
from fcn_edge.engine.plan import BuildRefused
from tests.engine.onnx_models import make_head_onnx


def _run(model_or_path, frames):
    data = model_or_path if isinstance(model_or_path, (str, bytes)) else model_or_path.SerializeToString()
    if not isinstance(data, bytes):
        data = str(data)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"frames": frames})


def test_fcn32s_upsampling_is_flagged(tiny_fcn32s_aligned):
    model, rewritten = unpad_deconvolutions(onnx.load(str(tiny_fcn32s_aligned)))
    report = dla_precheck(model)
    assert not report.core_on_dla
    (off,) = report.core_off_dla
    assert off.op_type == "ConvTranspose" and "upscore" in off.name and "kernel 64x64" in off.reason
    lines = "\n".join(report.lines())
    assert "cannot run on DLA" in lines and "upscore" in lines
    warnings = report.enforce(gpu_fallback=True, onnx_name="fcn32s.onnx")
    assert any("upscore" in w and "GPU" in w for w in warnings)
    with pytest.raises(BuildRefused, match="upscore.*kernel 64x64"):
        report.enforce(gpu_fallback=False, onnx_name="fcn32s.onnx")


def test_fcn8s_aligned_conv_and_deconv_layers_pass(tiny_fcn8s_aligned):
    original = onnx.load(str(tiny_fcn8s_aligned))
    # As exported, the aligned geometry's padded deconvolutions are not DLA-capable ...
    before = dla_precheck(original)
    assert {v.name for v in before.core_off_dla} == {"/fcn/upscore2/ConvTranspose", "/fcn/upscore_pool4/ConvTranspose",
                                                     "/fcn/upscore8/ConvTranspose"}
    assert all("padding" in v.reason for v in before.core_off_dla)
    # ... the rewrite makes every conv/deconv/pool layer DLA-capable
    model, rewritten = unpad_deconvolutions(original)
    assert len(rewritten) == 3
    report = dla_precheck(model)
    assert report.core_on_dla and len(report.core) == 26
    gpu_ops = {v.op_type for v in report.gpu_layers}
    assert gpu_ops == {"Cast", "Transpose", "ArgMax"}
    text = "\n".join(report.lines())
    assert "26 of 26 conv/deconv/pool layers can run on DLA" in text
    assert "GPU fallback for the non-conv layers" in text and "(ArgMax)" in text and "(Cast)" in text
    assert report.enforce(gpu_fallback=True, onnx_name="fcn8s.onnx") == []
    with pytest.raises(BuildRefused, match="add --gpu-fallback"):
        report.enforce(gpu_fallback=False, onnx_name="fcn8s.onnx")


def test_unpadded_rewrite_computes_the_same_output(tiny_fcn8s_aligned, tmp_path):
    original = onnx.load(str(tiny_fcn8s_aligned))
    model, _ = unpad_deconvolutions(original)
    for node in model.graph.node:
        if node.op_type == "ConvTranspose":
            assert not any(next(a for a in node.attribute if a.name == "pads").ints)
    path = tmp_path / "unpadded.onnx"
    onnx.save(model, str(path))
    frames = np.random.default_rng(3).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    labels_a, logits_a = _run(str(tiny_fcn8s_aligned), frames)
    labels_b, logits_b = _run(str(path), frames)
    np.testing.assert_allclose(logits_a, logits_b, rtol=1e-5, atol=1e-4)
    assert (labels_a == labels_b).all()
    # output names and I/O unchanged
    assert [o.name for o in model.graph.output] == [o.name for o in original.graph.output]


def test_rewrite_keeps_a_deconvolution_graph_output_name(tmp_path):
    """When the padded deconvolution's output is itself a graph output, its name survives the rewrite."""
    path = make_head_onnx(tmp_path / "h.onnx", kernel=4, stride=2, pad=1)
    model = onnx.load(str(path))
    identity = next(n for n in model.graph.node if n.op_type == "Identity")
    model.graph.node.remove(identity)
    deconv = next(n for n in model.graph.node if n.op_type == "ConvTranspose")
    deconv.output[0] = "logits"
    onnx.save(model, str(path))
    rewritten_model, names = unpad_deconvolutions(model)
    assert names == ["upscore"]
    assert [o.name for o in rewritten_model.graph.output] == ["labels", "logits"]
    frames = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    out = tmp_path / "r.onnx"
    onnx.save(rewritten_model, str(out))
    a, b = _run(str(path), frames), _run(str(out), frames)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-5)
    assert (a[0] == b[0]).all()


def test_head_parameters_and_dynamic_shapes(tmp_path):
    ok = dla_precheck(onnx.load(str(make_head_onnx(tmp_path / "a.onnx", kernel=32, stride=16, pad=0, size=(64, 64)))))
    assert ok.core_on_dla
    stride = dla_precheck(onnx.load(str(make_head_onnx(tmp_path / "b.onnx", kernel=32, stride=33, pad=0, down=16))))
    assert any("stride" in v.reason for v in stride.core_off_dla)
    dynamic = dla_precheck(onnx.load(str(make_head_onnx(tmp_path / "c.onnx", batch="batch"))))
    assert not dynamic.static_shapes and "static shapes" in dynamic.general_problems[0]
    with pytest.raises(BuildRefused, match="static shapes"):
        dynamic.enforce(gpu_fallback=True, onnx_name="c.onnx")
    assert dla_precheck(onnx.load(str(make_head_onnx(tmp_path / "d.onnx", batch="batch"))), static_shapes=True).static_shapes
