from __future__ import annotations

import logging

import numpy as np
import pytest

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.export import read_onnx_metadata
from fcn_edge.runtime import open_runner
from fcn_edge.runtime.onnxruntime_backend import resolve_providers
from tests.onnx_models import foreign_copy, moving_frames


def frames(n: int, size=(64, 96)) -> np.ndarray:
    return np.stack([f[: size[0], : size[1]] for f in moving_frames(n, (max(size[0], 120), max(size[1], 160)))])


def test_io_spec_and_info_come_from_the_graph_and_metadata(tiny_onnx, tiny_info):
    with open_runner(tiny_onnx, intra_op_threads=1) as runner:
        io = runner.io
        assert runner.backend == "onnxruntime"
        assert io.kind == "frames"
        assert io.input.name == "frames" and io.input.dtype == "uint8" and io.input.layout == "NHWC"
        assert io.input.shape == (1, 64, 96, 3)
        assert io.size == (64, 96) and io.batch == 1
        assert io.output_names == ("labels", "confidence")
        assert runner.info.to_dict() == tiny_info.to_dict()
        described = runner.describe()
        assert described["providers"] == ["CPUExecutionProvider"] and described["intra_op_threads"] == 1


def test_labels_and_confidence_match_pytorch(tiny_onnx, tiny_checkpoint):
    batch = frames(1)
    with open_runner(tiny_onnx) as onnx_runner, open_runner(tiny_checkpoint, confidence=True) as torch_runner:
        a = onnx_runner.infer(batch)
        b = torch_runner.infer(batch)
    assert a.labels.dtype == np.uint8 and a.labels.shape == (1, 64, 96)
    assert a.confidence.dtype == np.float32 and a.confidence.shape == (1, 64, 96)
    assert (a.labels == b.labels).mean() > 0.999
    # The export stores confidence as uint8 (probability x 255, rounded): half a step is its resolution.
    step = read_onnx_metadata(tiny_onnx)[1].confidence_scale
    assert step == 1 / 255
    np.testing.assert_allclose(a.confidence, b.confidence, atol=step / 2 + 1e-4)
    assert len(np.unique(a.labels)) > 1  # a tiny random model still gives a non-trivial map
    assert {"run", "infer"} <= set(a.timings)


def test_dynamic_batch_and_single_frame(tiny_onnx_dynamic):
    batch = frames(3)
    with open_runner(tiny_onnx_dynamic) as runner:
        assert runner.io.batch is None and runner.io.max_batch == 8
        assert runner.io.input.max_shape == (8, 64, 96, 3)
        whole = runner.infer(batch)
        assert whole.labels.shape == (3, 64, 96)
        assert whole.confidence is None
        one = runner.infer(batch[1])  # HxWx3 counts as a batch of one
        np.testing.assert_array_equal(one.labels[0], whole.labels[1])
        listed = runner.infer([batch[0], batch[2]])
        np.testing.assert_array_equal(listed.labels, whole.labels[[0, 2]])
        assert whole.item(2).labels.shape == (1, 64, 96)


def test_bad_batches_are_one_line_errors(tiny_onnx):
    with open_runner(tiny_onnx) as runner:
        with pytest.raises(FcnEdgeError, match="exactly 1 frame"):
            runner.infer(frames(2))
        with pytest.raises(FcnEdgeError, match="takes 64x96"):
            runner.infer(np.zeros((1, 32, 32, 3), np.uint8))
        with pytest.raises(FcnEdgeError, match="uint8"):
            runner.infer(np.zeros((1, 64, 96, 3), np.float32))
        with pytest.raises(FcnEdgeError, match="colour images"):
            runner.infer(np.zeros((1, 64, 96), np.uint8))
        with pytest.raises(FcnEdgeError, match="same size"):
            runner.infer([np.zeros((64, 96, 3), np.uint8), np.zeros((60, 96, 3), np.uint8)])
        with pytest.raises(FcnEdgeError, match="fixed input size"):
            runner.io.network_size((32, 32))


def test_raw_io_takes_floats_or_normalises_frames_on_the_host(tiny_onnx_raw, tiny_onnx, tiny_info):
    from fcn_edge.runtime.preprocess import frames_to_raw

    batch = frames(1)
    with open_runner(tiny_onnx_raw) as raw, open_runner(tiny_onnx) as deployed:
        assert raw.io.kind == "raw" and raw.io.input.layout == "NCHW" and raw.io.input.name == "input"
        from_frames = raw.infer(batch)
        from_floats = raw.infer(frames_to_raw(batch, tiny_info.preprocessing))
        reference = deployed.infer(batch)
    np.testing.assert_array_equal(from_frames.labels, from_floats.labels)
    assert from_frames.logits.shape == (1, tiny_info.num_classes, 64, 96)
    np.testing.assert_array_equal(from_frames.labels, np.argmax(from_frames.logits, axis=1))
    assert (from_frames.labels == reference.labels).mean() > 0.999


def test_io_binding_gives_the_same_result(tiny_onnx):
    batch = frames(1)
    with open_runner(tiny_onnx, io_binding=True) as bound, open_runner(tiny_onnx, io_binding=False) as plain:
        assert bound.describe()["io_binding"] is True
        a, b = bound.infer(batch), plain.infer(batch)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.confidence, b.confidence)


def test_output_selection(tiny_onnx):
    with open_runner(tiny_onnx, outputs=["labels"]) as runner:
        assert runner.infer(frames(1)).confidence is None
    with pytest.raises(FcnEdgeError, match="no output"):
        open_runner(tiny_onnx, outputs=["logits"])


def test_model_without_metadata_still_runs(tmp_path, tiny_onnx, caplog):
    path = foreign_copy(tiny_onnx, tmp_path / "bare.onnx")
    with caplog.at_level(logging.WARNING):
        with open_runner(path) as runner:
            assert runner.io.kind == "frames" and runner.io.size == (64, 96)
            assert runner.info.num_classes == 21  # VOC stand-in
            assert runner.infer(frames(1)).labels.shape == (1, 64, 96)
    assert "no fcn-edge model description" in caplog.text


def test_a_broken_description_is_refused_not_guessed(tmp_path, tiny_onnx):
    import onnx

    model = onnx.load(str(tiny_onnx))
    for prop in model.metadata_props:
        if prop.key == "fcn_edge.model":
            prop.value = "{broken"
    path = tmp_path / "broken_meta.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ArtifactError, match="broken_meta.onnx: .*re-export it with fcn-edge export"):
        open_runner(path)


def test_corrupt_model_and_missing_providers(tmp_path, tiny_onnx):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ArtifactError, match=r"broken.onnx is not an ONNX model \(it is corrupt, truncated"):
        open_runner(broken)
    available = ["CPUExecutionProvider"]
    with pytest.raises(FcnEdgeError, match="onnxruntime-gpu"):
        resolve_providers("cuda", available)
    assert resolve_providers(None, available) == ["CPUExecutionProvider"]
    full = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = resolve_providers("tensorrt,cuda", full, device_id=1, trt_fp16=True, trt_cache_dir="/tmp/c")
    assert providers[0][0] == "TensorrtExecutionProvider" and providers[0][1]["trt_fp16_enable"] is True
    assert providers[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert providers[2] == "CPUExecutionProvider"
