"""Shared exports of the tiny checkpoint (each export costs a few seconds: made once per session)."""

from __future__ import annotations

import pytest

from fcn_edge.export import ExportConfig, export_onnx


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def frames_export(tiny_checkpoint, export_dir):
    """frames in, all three outputs, static 1x64x96 (the checkpoint's size), BGR camera -> RGB weights."""
    return export_onnx(tiny_checkpoint, export_dir / "frames.onnx",
                       ExportConfig(outputs=("labels", "confidence", "logits")))


@pytest.fixture(scope="session")
def raw_export(tiny_checkpoint, export_dir):
    """raw float NCHW in, logits out, paper geometry at an odd size."""
    return export_onnx(tiny_checkpoint, export_dir / "raw.onnx",
                       ExportConfig(io="raw", outputs=("logits",), geometry="paper", size=(70, 90)))


@pytest.fixture(scope="session")
def dynamic_export(tiny_checkpoint, export_dir):
    """frames in, labels + float16 confidence, dynamic batch/height/width."""
    return export_onnx(tiny_checkpoint, export_dir / "dynamic.onnx",
                       ExportConfig(dynamic=("batch", "height", "width"), outputs=("labels", "confidence"),
                                    confidence_dtype="float16", min_shape=(1, 40, 40), max_shape=(3, 160, 160)))


@pytest.fixture(scope="session")
def odd_size_export(tiny_checkpoint, export_dir):
    """Static aligned export at a size that is not a multiple of 32 (the model pads and crops)."""
    return export_onnx(tiny_checkpoint, export_dir / "odd.onnx", ExportConfig(size=(100, 130)))
