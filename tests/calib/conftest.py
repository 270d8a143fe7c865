"""Session fixtures: the trained tiny FCN-8s, its ONNX exports, a synthetic dataset, one default calibration."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """fcn-edge synth's folder layout: 40 train (calibration) and 30 val (scoring) images, 96x128."""
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("calib-data") / "synth"
    write_synthetic_dataset(root, SynthConfig(train=40, val=30, size=(96, 128)), show_progress=False)
    return root


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    from tests.calib.tiny_trained import train_tiny_fcn8s

    return train_tiny_fcn8s(tmp_path_factory.mktemp("calib-model") / "tiny_trained.pt")


@pytest.fixture(scope="session")
def trained_onnx(trained_checkpoint, tmp_path_factory):
    """The trained model exported by fcn-edge export: frames I/O, labels + confidence + logits, 64x96, opset 17."""
    from tests.calib.tiny_trained import export_tiny

    return export_tiny(trained_checkpoint, tmp_path_factory.mktemp("calib-onnx") / "tiny.onnx",
                       outputs=("labels", "confidence", "logits"))


@pytest.fixture(scope="session")
def default_calibration(trained_onnx, synth_data, tmp_path_factory):
    """One calibration with every default (entropy, trt8, default keep-float), scored on the val split."""
    from fcn_edge.calib import calibrate_onnx

    folder = tmp_path_factory.mktemp("calib-out")
    model = folder / "tiny.onnx"
    shutil.copy(trained_onnx, model)
    return calibrate_onnx(model, synth_data, val=synth_data, show_progress=False)


@pytest.fixture
def model_copy(tmp_path, trained_onnx):
    """A private copy of the trained ONNX in this test's folder (outputs land next to it)."""
    path = tmp_path / "model.onnx"
    shutil.copy(trained_onnx, path)
    return path


@pytest.fixture(scope="session")
def all_quantized(trained_onnx, synth_data, tmp_path_factory):
    """Every layer quantized (--keep-float none), the upsampling ConvTransposes included."""
    from fcn_edge.calib import calibrate_onnx

    folder = tmp_path_factory.mktemp("calib-all")
    model = folder / "tiny.onnx"
    shutil.copy(trained_onnx, model)
    return calibrate_onnx(model, synth_data, keep_float=(), num_images=16, accuracy=False, show_progress=False)


@pytest.fixture(scope="session")
def outlier_onnx(trained_checkpoint, tmp_path_factory):
    """The trained model with an activation outlier between conv3_1 and conv3_2 (labels, 64x96): plain INT8 fails it."""
    from tests.calib.tiny_trained import export_tiny, plant_activation_outlier

    folder = tmp_path_factory.mktemp("calib-outlier")
    checkpoint = plant_activation_outlier(trained_checkpoint, folder / "outlier.pt")
    return export_tiny(checkpoint, folder / "outlier.onnx")
