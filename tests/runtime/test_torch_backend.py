from __future__ import annotations

import numpy as np
import pytest
import torch

from fcn_edge.runtime import open_runner
from fcn_edge.runtime.preprocess import frames_to_raw
from fcn_edge.errors import FcnEdgeError
from fcn_edge.export.graph import FramesToInput, SegmentationOutputs
from fcn_edge.runtime.torch_backend import TorchRunner
from tests.onnx_models import moving_frames


def test_torch_runner_outputs(tiny_checkpoint, tiny_info):
    batch = np.stack([f[:64, :96] for f in moving_frames(2)])
    with open_runner(tiny_checkpoint, confidence=True, logits=True) as runner:
        assert runner.backend == "torch"
        assert runner.io.size is None and runner.io.preferred_size == (64, 96) and runner.io.batch is None
        result = runner.infer(batch)
        other_size = runner.infer(np.zeros((1, 96, 128, 3), np.uint8))  # any size works
    assert result.labels.shape == (2, 64, 96) and result.labels.dtype == np.uint8
    assert result.logits.shape == (2, tiny_info.num_classes, 64, 96)
    np.testing.assert_array_equal(result.labels, np.argmax(result.logits, axis=1))
    softmax = np.exp(result.logits) / np.exp(result.logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.confidence, softmax.max(axis=1), atol=1e-5)
    assert other_size.labels.shape == (1, 96, 128)


def test_in_graph_preprocessing_normalises_like_the_host_code(tiny_info):
    """The torch backend runs export's graph modules; their normalisation equals the raw-I/O host code."""
    frames = np.stack(moving_frames(2, (32, 32)))
    in_graph = FramesToInput(tiny_info.preprocessing)(torch.from_numpy(frames)).numpy()
    np.testing.assert_allclose(in_graph, frames_to_raw(frames, tiny_info.preprocessing), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        SegmentationOutputs(("scores",), 5)


def test_cuda_device_without_cuda_is_a_clear_error(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from fcn_edge.errors import FcnEdgeError

    with pytest.raises(FcnEdgeError, match="no CUDA"):
        open_runner(tiny_checkpoint, device="cuda")


def test_fp16_needs_cuda(tiny_checkpoint):
    with pytest.raises(FcnEdgeError, match="fp16 needs device='cuda'"):
        TorchRunner(tiny_checkpoint, precision="fp16")
    with pytest.raises(FcnEdgeError, match="precision must be"):
        TorchRunner(tiny_checkpoint, precision="int8")


@pytest.mark.gpu
def test_fp16_on_cuda_agrees_with_fp32(tiny_checkpoint):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA")
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    with TorchRunner(tiny_checkpoint, device="cuda") as fp32, TorchRunner(tiny_checkpoint, device="cuda", precision="fp16") as fp16:
        a = fp32.infer(frames).labels
        b = fp16.infer(frames).labels
    assert a.dtype == b.dtype == np.uint8
    assert (a == b).mean() > 0.98
