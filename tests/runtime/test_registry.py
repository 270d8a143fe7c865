from __future__ import annotations

import numpy as np
import pytest

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.runtime import (InferenceResult, IOSpec, Runner, TensorSpec, backends, open_runner, register_backend,
                              resolve_backend, unregister_backend)


def test_builtin_backends_by_suffix():
    assert resolve_backend("m.onnx").name == "onnxruntime"
    assert resolve_backend("m.ONNX").name == "onnxruntime"
    assert resolve_backend("/x/m.fp16.engine").name == "tensorrt"
    assert resolve_backend("m.plan").name == "tensorrt"
    assert resolve_backend("m.pt").name == "torch"
    assert resolve_backend("m.pth").name == "torch"
    assert resolve_backend("m.bin", backend="onnxruntime").name == "onnxruntime"
    assert {"onnxruntime", "tensorrt", "torch"} <= set(backends())


def test_unknown_suffix_scheme_and_backend_are_one_line_errors():
    with pytest.raises(ArtifactError, match=r"suffix \.bin"):
        resolve_backend("model.bin")
    with pytest.raises(FcnEdgeError, match="no backend serves ftp://"):
        resolve_backend("ftp://host:8000/fcn")
    assert resolve_backend("triton://host:8000/fcn").name == "triton"
    assert resolve_backend("triton+grpc://host:8001/fcn").name == "triton"
    with pytest.raises(FcnEdgeError, match="unknown backend"):
        resolve_backend("m.onnx", backend="nope")


def test_missing_model_file(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        open_runner(tmp_path / "absent.onnx")
    with pytest.raises(ArtifactError, match="is a folder"):
        (tmp_path / "dir.onnx").mkdir()
        open_runner(tmp_path / "dir.onnx")


class EchoRunner(Runner):
    """Test double for a remote backend: labels = first channel of the frame mod 5."""

    backend = "echo"

    def __init__(self, url: str, classes: int = 5) -> None:
        super().__init__()
        self.model_path = url
        self.info = ModelInfo(num_classes=classes)
        spec = TensorSpec("frames", "uint8", (None, 8, 8, 3), "NHWC")
        self.io = IOSpec("frames", spec, (TensorSpec("labels", "uint8", (None, 8, 8), "NHW"),), size=(8, 8),
                         batch=None, max_batch=4)

    def _run(self, batch: np.ndarray) -> InferenceResult:
        return InferenceResult(labels=(batch[..., 0] % self.info.num_classes).astype(np.uint8))


def test_a_new_backend_joins_by_url_scheme():
    register_backend("echo", lambda url, **options: EchoRunner(url, **options), schemes=("echo",))
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_backend("echo", EchoRunner, schemes=("echo",))
        with open_runner("echo://server:1234/model", classes=3) as runner:
            assert isinstance(runner, EchoRunner) and runner.info.num_classes == 3
            frames = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
            result = runner.infer(frames)
            np.testing.assert_array_equal(result.labels, frames[..., 0] % 3)
            assert "infer" in result.timings
            with pytest.raises(FcnEdgeError, match="at most 4 frames"):
                runner.infer(np.zeros((5, 8, 8, 3), np.uint8))
        assert runner.closed
        with pytest.raises(FcnEdgeError, match="closed"):
            runner.infer(frames)
    finally:
        unregister_backend("echo")
