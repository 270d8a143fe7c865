"""TensorRT runner: real-engine tests (marked tensorrt) and the errors users see without TensorRT."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.conftest import assert_one_line_error
from tests.onnx_models import moving_frames


def test_engine_without_tensorrt_installed_is_one_line(tmp_path, run_cli, sample_video):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    completed = run_cli("run", engine, "--source", sample_video)
    assert completed.returncode == 3
    assert_one_line_error(completed, "tensorrt", "to run TensorRT engines")


def build_engine(onnx_path, engine_path, dynamic: bool):
    trt = pytest.importorskip("tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 28)
    if dynamic:
        profile = builder.create_optimization_profile()
        profile.set_shape("frames", (1, 64, 96, 3), (2, 64, 96, 3), (4, 64, 96, 3))
        config.add_optimization_profile(profile)
    data = builder.build_serialized_network(network, config)
    assert data is not None
    engine_path.write_bytes(bytes(data))
    return engine_path


@pytest.fixture(scope="module")
def tiny_engines(tmp_path_factory, tiny_onnx, tiny_onnx_dynamic):
    folder = tmp_path_factory.mktemp("engines")
    static_onnx, dynamic_onnx = tiny_onnx, tiny_onnx_dynamic
    return {
        "static": (static_onnx, build_engine(static_onnx, folder / "static.engine", False)),
        "dynamic": (dynamic_onnx, build_engine(dynamic_onnx, folder / "dynamic.engine", True)),
    }


@pytest.mark.tensorrt
def test_engine_labels_match_onnxruntime(tiny_engines, tiny_info):
    from fcn_edge.runtime import open_runner

    onnx_path, engine_path = tiny_engines["static"]
    batch = np.stack([f[:64, :96] for f in moving_frames(1)])
    with open_runner(onnx_path) as reference, open_runner(engine_path, info=tiny_info) as engine:
        assert engine.backend == "tensorrt" and engine.max_in_flight == 2
        assert engine.io.kind == "frames" and engine.io.size == (64, 96)
        expected = reference.infer(batch)
        got = engine.infer(batch)
    assert got.labels.dtype == np.uint8 and got.labels.shape == (1, 64, 96)
    assert (got.labels == expected.labels).mean() > 0.99
    np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-2)
    assert {"h2d", "compute", "d2h", "infer"} <= set(got.timings)
    assert all(v >= 0 for v in got.timings.values())


@pytest.mark.tensorrt
def test_two_batches_in_flight_on_a_dynamic_engine(tiny_engines, tiny_info):
    from fcn_edge.runtime import open_runner

    onnx_path, engine_path = tiny_engines["dynamic"]
    frames = np.stack([f[:64, :96] for f in moving_frames(6)])
    with open_runner(onnx_path) as reference, open_runner(engine_path, info=tiny_info) as engine:
        assert engine.io.batch is None and engine.io.max_batch == 4
        first = engine.submit(frames[:3])
        second = engine.submit(frames[3:4])  # upload overlaps the first batch's compute
        with pytest.raises(RuntimeError, match="in flight"):
            engine.submit(frames[:1])
        a, b = first.result(), second.result()
        assert a.labels.shape == (3, 64, 96) and b.labels.shape == (1, 64, 96)
        expected = reference.infer(frames[:4])
    assert (np.concatenate([a.labels, b.labels]) == expected.labels).mean() > 0.99


@pytest.mark.tensorrt
def test_sidecar_mismatch_is_reported_before_deserialising(tiny_engines, tmp_path):
    from fcn_edge.artifacts.gpu import probe_gpu
    from fcn_edge.artifacts.sidecar import make_sidecar, write_engine_and_sidecar
    from fcn_edge.errors import ArtifactError
    from fcn_edge.runtime import open_runner

    _, engine_path = tiny_engines["static"]
    copy = tmp_path / "old.engine"
    data = engine_path.read_bytes()
    sidecar = make_sidecar(engine_bytes=data, engine_name=copy.name, trt_version="7.0.0", gpu=probe_gpu(),
                           precision="fp32", io={"inputs": [], "outputs": []}, source_name="tiny.onnx",
                           source_sha256="0" * 64, source_opset=17, build={}, version_compatible=False,
                           exclude_lean_runtime=False, hardware_compat="none", dla_core=None, gpu_fallback=False,
                           model=None, export=None)
    write_engine_and_sidecar(copy, data, sidecar)
    with pytest.raises(ArtifactError, match="TensorRT 7.0.0"):
        open_runner(copy)
