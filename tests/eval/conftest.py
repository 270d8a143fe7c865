"""A small synthetic validation set and tiny checkpoints (the ONNX exports are tests/onnx_models.py's)."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_CLASSES, TINY_WIDTH


@pytest.fixture(scope="session")
def synth_val(tmp_path_factory):
    """8 val (and 2 train) synthetic scenes of 64x80, 5 classes."""
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("eval-synth") / "data"
    write_synthetic_dataset(root, SynthConfig(train=2, val=8, size=(64, 80), num_classes=TINY_CLASSES, seed=5))
    return root


def save_tiny(path, *, geometry="aligned", classes=TINY_CLASSES, input_size=(64, 96), seed=0, arch="fcn8s"):
    """A random tiny FCN whose score layers are non-zero (so predictions vary across the image)."""
    import torch

    from fcn_edge.checkpoint import save_model
    from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing
    from fcn_edge.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, classes, geometry, TINY_WIDTH)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.5)
    info = ModelInfo(arch=arch, num_classes=classes, geometry=geometry, width=TINY_WIDTH,
                     preprocessing=Preprocessing.imagenet(), input_size=input_size)
    return save_model(path, model, info)
