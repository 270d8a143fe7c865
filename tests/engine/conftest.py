"""Fixtures for the engine tests: small ONNX files made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcn_edge.engine.onnx_info import OnnxFacts, TensorFacts
from tests.engine.onnx_models import export_tiny_fcn, make_head_onnx


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine_onnx")


@pytest.fixture(scope="session")
def head8_onnx(onnx_dir) -> Path:
    """FCN-8s-like head: 16-wide, stride-8 upsampling padded by 4 (aligned geometry)."""
    return make_head_onnx(onnx_dir / "head8.onnx", kernel=16, stride=8, pad=4)


@pytest.fixture(scope="session")
def tiny_fcn8s_aligned(onnx_dir) -> Path:
    return export_tiny_fcn(onnx_dir / "fcn8s_aligned.onnx", "fcn8s", "aligned")


@pytest.fixture(scope="session")
def tiny_fcn32s_aligned(onnx_dir) -> Path:
    return export_tiny_fcn(onnx_dir / "fcn32s_aligned.onnx", "fcn32s", "aligned")


def make_facts(**overrides) -> OnnxFacts:
    """OnnxFacts for plan tests without any file (a static FP32 frames model by default)."""
    values = dict(
        path=Path("model.onnx"), sha256="a" * 64, opset=17,
        inputs=(TensorFacts("frames", (1, 512, 512, 3), "uint8"),),
        outputs=(TensorFacts("labels", (1, 512, 512), "uint8"),),
        op_types=frozenset({"Cast", "Conv", "ConvTranspose", "ArgMax"}), has_qdq=False,
        float_weight_dtypes=frozenset({"float32"}), padded_deconvs=(), model_info=None, export_info={},
    )
    values.update(overrides)
    return OnnxFacts(**values)
