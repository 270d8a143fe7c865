from __future__ import annotations

import numpy as np
import pytest
import torch

from fcn_edge.runtime import open_runner
from fcn_edge.runtime.preprocess import frames_to_raw
from fcn_edge.runtime.torch_backend import FramesModule
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


def test_frames_module_normalises_like_the_host_code(tiny_info):
    frames = np.stack(moving_frames(2, (32, 32)))
    module = FramesModule(torch.nn.Identity(), tiny_info.preprocessing, tiny_info.num_classes, ("logits",))
    in_graph = module.normalise(torch.from_numpy(frames)).numpy()
    np.testing.assert_allclose(in_graph, frames_to_raw(frames, tiny_info.preprocessing), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        FramesModule(torch.nn.Identity(), tiny_info.preprocessing, 5, ("scores",))


def test_cuda_device_without_cuda_is_a_clear_error(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from fcn_edge.errors import FcnEdgeError

    with pytest.raises(FcnEdgeError, match="no CUDA"):
        open_runner(tiny_checkpoint, device="cuda")
