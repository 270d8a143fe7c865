"""The torch modules that become the in-graph pre/post-processing."""

from __future__ import annotations

import pytest
import torch

from fcn_edge.export.graph import (
    AlignedAnySize, DeployableFCN, FramesToInput, SegmentationOutputs, preprocess_frames,
)
from fcn_edge.artifacts.modelinfo import Preprocessing, label_dtype
from fcn_edge.models import build_model

from ..conftest import TINY_WIDTH


def test_frames_to_input_matches_plain_preprocessing_and_reorders_channels():
    pre = Preprocessing.imagenet()  # camera BGR, weights RGB, /255, ImageNet mean/std
    frames = torch.randint(0, 256, (2, 7, 9, 3), dtype=torch.uint8)
    got = FramesToInput(pre)(frames)
    assert got.shape == (2, 3, 7, 9) and got.dtype == torch.float32
    torch.testing.assert_close(got, preprocess_frames(frames, pre), rtol=1e-6, atol=1e-5)
    # channel 0 of the network input is the frame's last (R of BGR) channel
    expected_r = (frames[..., 2].float() / 255 - 0.485) / 0.229
    torch.testing.assert_close(got[:, 0], expected_r, rtol=1e-6, atol=1e-5)


def test_frames_to_input_without_swap_keeps_order():
    pre = Preprocessing.caffe()  # BGR in, BGR weights, mean only
    frames = torch.randint(0, 256, (1, 4, 5, 3), dtype=torch.uint8)
    got = FramesToInput(pre)(frames)
    torch.testing.assert_close(got[:, 0], frames[..., 0].float() - pre.mean[0])


@pytest.mark.parametrize("size", [(64, 96), (33, 47), (100, 130)])
def test_aligned_any_size_equals_model_forward(size):
    torch.manual_seed(0)
    fcn = build_model("fcn8s", 3, "aligned", TINY_WIDTH).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(AlignedAnySize(fcn)(x), fcn(x))


def test_aligned_any_size_refuses_paper_geometry():
    with pytest.raises(ValueError):
        AlignedAnySize(build_model("fcn8s", 3, "paper", TINY_WIDTH))


def test_outputs_dtypes_and_values():
    logits = torch.randn(2, 5, 6, 7)
    labels, conf, raw = SegmentationOutputs(("labels", "confidence", "logits"), 5)(logits)
    assert labels.dtype == torch.uint8 and conf.dtype == torch.uint8 and raw is logits
    assert torch.equal(labels.long(), logits.argmax(1))
    prob = torch.softmax(logits, 1).amax(1)
    assert torch.equal(conf, torch.floor(prob * 255 + 0.5).to(torch.uint8))
    (conf16,) = SegmentationOutputs(("confidence",), 5, "float16")(logits)
    assert conf16.dtype == torch.float16
    torch.testing.assert_close(conf16.float(), prob, atol=1e-3, rtol=0)


def test_labels_are_int32_above_255_classes():
    assert label_dtype(255) == "uint8" and label_dtype(256) == "int32"
    logits = torch.randn(1, 300, 2, 3)
    (labels,) = SegmentationOutputs(("labels",), 300)(logits)
    assert labels.dtype == torch.int32 and torch.equal(labels.long(), logits.argmax(1))


def test_bad_outputs_refused():
    with pytest.raises(ValueError):
        SegmentationOutputs(("labels", "probabilities"), 5)
    with pytest.raises(ValueError):
        DeployableFCN(torch.nn.Identity(), Preprocessing(), 5, io="jpeg")
