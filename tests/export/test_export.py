"""export_onnx end to end on the tiny model: I/O modes, outputs, shapes, verification, atomic writes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fcn_edge.checkpoint import load_checkpoint
from fcn_edge.export import ExportConfig, ExportConfigError, export_onnx, read_onnx_metadata
from fcn_edge.export.graph import preprocess_frames
from fcn_edge.export.verify import VerificationError
from fcn_edge.runtime.synthetic import synthetic_frames

RUNTIME_SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "Range", "NonZero", "Mod", "Concat", "Reshape"}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _torch_logits(checkpoint, x, geometry="aligned"):
    model = load_checkpoint(checkpoint).build_model(geometry=geometry).eval()
    with torch.no_grad():
        return model(x).numpy()


def _io(path):
    model = onnx.load(str(path))
    def describe(vi):
        return (vi.name, vi.type.tensor_type.elem_type,
                [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim])
    return [describe(i) for i in model.graph.input], [describe(o) for o in model.graph.output]


def test_frames_mode_io_contract(frames_export):
    inputs, outputs = _io(frames_export.path)
    assert inputs == [("frames", onnx.TensorProto.UINT8, [1, 64, 96, 3])]
    assert outputs == [("labels", onnx.TensorProto.UINT8, [1, 64, 96]),
                       ("confidence", onnx.TensorProto.UINT8, [1, 64, 96]),
                       ("logits", onnx.TensorProto.FLOAT, [1, 5, 64, 96])]
    v = frames_export.verification
    assert v.passed and v.logits_rel_diff <= 1e-4 and v.label_agreement >= 0.9999 and v.frames >= 3


def test_nodes_are_named_after_their_modules(frames_export):
    """TensorRT, the DLA pre-check and the lint print these names: layers, not aten ops."""
    names = [n.name for n in onnx.load(str(frames_export.path)).graph.node]
    assert len(set(names)) == len(names)
    deconvs = [n for n in names if n.endswith("/ConvTranspose")]
    assert deconvs == ["/fcn/upscore2/ConvTranspose", "/fcn/upscore_pool4/ConvTranspose", "/fcn/upscore8/ConvTranspose"]
    assert "/fcn/conv1_1/Conv" in names and "/post/ArgMax" in names
    assert not [n for n in names if n.startswith("node_")]


def test_frames_graph_reorders_bgr_to_rgb(frames_export, tiny_checkpoint, tiny_info):
    """Feed a BGR frame to the ONNX; PyTorch gets it flipped to RGB and normalised by hand."""
    frame = synthetic_frames(2, 64, 96, seed=5)[1:]  # smooth colours: channels clearly differ
    labels, conf, logits = _session(frames_export.path).run(None, {"frames": frame})
    rgb = frame[..., ::-1].astype(np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    manual = torch.from_numpy(((rgb - mean) / std).transpose(0, 3, 1, 2).astype(np.float32).copy())
    ref = _torch_logits(tiny_checkpoint, manual)
    assert np.abs(logits - ref).max() <= 1e-4 * np.abs(ref).max()
    assert (labels == ref.argmax(1)).mean() >= 0.9999
    # without the reorder the network sees a different image: the graph really swaps
    unswapped = torch.from_numpy(((frame.astype(np.float32) / 255 - mean) / std).transpose(0, 3, 1, 2)
                                 .astype(np.float32).copy())
    assert np.abs(logits - _torch_logits(tiny_checkpoint, unswapped)).max() > 1e-2 * np.abs(ref).max()
    prob = torch.softmax(torch.from_numpy(ref), 1).amax(1).numpy()
    assert np.abs(conf.astype(float) - prob * 255).max() <= 1.0


def test_raw_mode_takes_normalised_nchw(raw_export, tiny_checkpoint, tiny_info):
    inputs, outputs = _io(raw_export.path)
    assert inputs == [("input", onnx.TensorProto.FLOAT, [1, 3, 70, 90])]
    assert outputs == [("logits", onnx.TensorProto.FLOAT, [1, 5, 70, 90])]
    x = preprocess_frames(torch.from_numpy(synthetic_frames(1, 70, 90, seed=3)), tiny_info.preprocessing)
    (logits,) = _session(raw_export.path).run(None, {"input": x.numpy()})
    ref = _torch_logits(tiny_checkpoint, x, geometry="paper")
    assert np.abs(logits - ref).max() <= 1e-4 * np.abs(ref).max()
    _, facts = read_onnx_metadata(raw_export.path)
    assert facts.io == "raw" and facts.input == "input" and facts.input_layout == "NCHW"
    assert facts.input_channel_order == "RGB"  # the weights' order: raw input is already normalised


def test_dynamic_export_runs_at_two_sizes(dynamic_export, tiny_checkpoint, tiny_info):
    inputs, outputs = _io(dynamic_export.path)
    assert inputs == [("frames", onnx.TensorProto.UINT8, ["batch", "height", "width", 3])]
    assert outputs == [("labels", onnx.TensorProto.UINT8, ["batch", "height", "width"]),
                       ("confidence", onnx.TensorProto.FLOAT16, ["batch", "height", "width"])]
    session = _session(dynamic_export.path)
    for n, h, w in [(1, 64, 96), (3, 45, 71)]:  # the second is not a multiple of 32: pad + crop in the graph
        frames = synthetic_frames(n, h, w, seed=h)
        labels, conf = session.run(None, {"frames": frames})
        assert labels.shape == (n, h, w) and conf.shape == (n, h, w) and conf.dtype == np.float16
        ref = _torch_logits(tiny_checkpoint, preprocess_frames(torch.from_numpy(frames), tiny_info.preprocessing))
        assert (labels == ref.argmax(1)).mean() >= 0.9999
    _, facts = read_onnx_metadata(dynamic_export.path)
    assert facts.batch is None
    assert facts.dynamic == {"batch": [1, 1, 3], "height": [40, 64, 160], "width": [40, 96, 160]}
    assert facts.profile("max") == (3, 160, 160) and facts.profile("opt") == (1, 64, 96)
    assert len(dynamic_export.verification.shapes) == 2


@pytest.mark.parametrize("fixture", ["odd_size_export", "raw_export", "frames_export"])
def test_static_graphs_have_no_runtime_shape_arithmetic(fixture, request):
    report = request.getfixturevalue(fixture)
    model = onnx.load(str(report.path))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & RUNTIME_SHAPE_OPS, ops & RUNTIME_SHAPE_OPS
    assert not {"Dropout", "Identity"} & ops
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert not [i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT64]


def test_odd_size_static_export_matches_torch(odd_size_export, tiny_checkpoint, tiny_info):
    frames = synthetic_frames(1, 100, 130, seed=1)
    (labels,) = _session(odd_size_export.path).run(None, {"frames": frames})
    ref = _torch_logits(tiny_checkpoint, preprocess_frames(torch.from_numpy(frames), tiny_info.preprocessing))
    assert labels.shape == (1, 100, 130) and (labels == ref.argmax(1)).mean() >= 0.9999


def test_labels_go_argmax_float_uint8(frames_export):
    """TensorRT: ArgMax -> TopK (INT32 on 8.x, INT64 on 10.x); UINT8 only from a float Cast."""
    model = onnx.load(str(frames_export.path))
    producer = {out: n for n in model.graph.node for out in n.output}
    cast_u8 = producer["labels"]
    cast_f = producer[cast_u8.input[0]]
    argmax = producer[cast_f.input[0]]
    assert (cast_u8.op_type, cast_f.op_type, argmax.op_type) == ("Cast", "Cast", "ArgMax")
    assert cast_u8.attribute[0].i == onnx.TensorProto.UINT8 and cast_f.attribute[0].i == onnx.TensorProto.FLOAT
    first = producer[next(n for n in model.graph.node if n.op_type == "Transpose").input[0]]
    assert first.op_type == "Cast" and first.input[0] == "frames"  # uint8 goes straight into a Cast


def test_fp16_weights_halve_the_file(tiny_checkpoint, export_dir, frames_export):
    report = export_onnx(tiny_checkpoint, export_dir / "half.onnx",
                         ExportConfig(fp16_weights=True, outputs=("labels", "confidence", "logits")))
    assert report.facts.weights_dtype == "float16" and report.facts.precision == "fp32"
    assert report.file_bytes < 0.6 * frames_export.file_bytes
    assert report.verification.passed and "float16" in report.verification.reference
    assert report.verification.fp32_label_agreement > 0.99
    assert all(r.ok for r in report.lint)
    model = onnx.load(str(report.path))
    conv_weight = next(n for n in model.graph.node if n.op_type == "Conv").input[1]
    producer = {out: n for n in model.graph.node for out in n.output}[conv_weight]
    assert producer.op_type == "Cast"


def test_failed_verification_leaves_old_output_intact(tiny_checkpoint, tmp_path, monkeypatch):
    """Corrupt one weight in the exported graph: the check must catch it and OUT must survive."""
    from fcn_edge.export import exporter

    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous, good export")
    real_passes = exporter._apply_passes

    def corrupting_passes(model, *args):
        saved = real_passes(model, *args)
        init = next(i for i in model.graph.initializer if i.name.endswith("score_fr.weight"))
        values = onnx.numpy_helper.to_array(init) * 1.5
        init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
        return saved

    monkeypatch.setattr(exporter, "_apply_passes", corrupting_passes)
    with pytest.raises(VerificationError, match="logits differ") as err:
        export_onnx(tiny_checkpoint, out, ExportConfig())
    assert "previous file is intact" in str(err.value)
    assert out.read_bytes() == b"the previous, good export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary left behind


def test_strict_tolerance_fails_and_keeps_old_file(tiny_checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    with pytest.raises(VerificationError):
        export_onnx(tiny_checkpoint, out, ExportConfig(logits_rtol=-1.0))
    assert out.read_bytes() == b"old"


def test_no_verify_skips_the_check(tiny_checkpoint, tmp_path):
    report = export_onnx(tiny_checkpoint, tmp_path / "m.onnx", ExportConfig(verify=False, logits_rtol=-1.0))
    assert report.verification is None and report.path.exists()
    assert read_onnx_metadata(report.path)[1].verification is None


def test_input_order_override_is_recorded(tiny_checkpoint, tmp_path):
    report = export_onnx(tiny_checkpoint, tmp_path / "rgbcam.onnx",
                         ExportConfig(input_channel_order="RGB", verify=False, opset=18))
    info, facts = read_onnx_metadata(report.path)
    assert info.preprocessing.input_channel_order == "RGB" and facts.input_channel_order == "RGB"
    assert not info.preprocessing.needs_channel_swap
    assert facts.opset == 18
    model = onnx.load(str(report.path))
    assert "Gather" not in {n.op_type for n in model.graph.node}  # RGB camera, RGB weights: no reorder


def test_bad_shape_ranges_are_one_sentence_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(ExportConfigError, match="between"):
        export_onnx(tiny_checkpoint, tmp_path / "x.onnx",
                    ExportConfig(dynamic=("height",), min_shape=(1, 80, 96), max_shape=(1, 128, 96)))
    with pytest.raises(ExportConfigError, match="static"):
        export_onnx(tiny_checkpoint, tmp_path / "x.onnx", ExportConfig(max_shape=(4, 64, 96)))
    assert not (tmp_path / "x.onnx").exists()
