"""Our Q/DQ ONNX and calibration cache through real TensorRT (GPU machines with TensorRT only).

What the Q/DQ checks and the cache format tests assert without TensorRT, checked for real:

* the Q/DQ graph (trt8 and trt10 targets) parses and builds an engine whose layers run in
  INT8 (explicit quantization: INT8 builder flag on 8.x/10.x, strongly typed on 11.x);
* the FP32 ONNX + our calibration cache (header version = the installed TensorRT) builds
  with the implicit calibrator replaying the cache (TensorRT <= 10) and TensorRT never asks
  for a calibration batch (it accepted the cache instead of recalibrating).

Run: ``python -m pytest -q tests/calib/test_tensorrt_qdq.py`` on a machine with an NVIDIA
GPU and TensorRT 8.5+ (conftest skips it elsewhere).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.tensorrt


def _trt():
    trt = pytest.importorskip("tensorrt")
    return trt, int(trt.__version__.split(".")[0])


def _network(trt, major, path):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(path)), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 28)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    return logger, builder, network, config


def _layer_info(trt, logger, plan) -> str:
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    inspector = engine.create_engine_inspector()
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)


@pytest.mark.parametrize("target", ["trt8", "trt10"])
def test_qdq_graph_builds_int8(trained_checkpoint, synth_data, tmp_path, target):
    from fcn_edge.calib import calibrate_onnx
    from tests.calib.tiny_trained import export_tiny

    trt, major = _trt()
    model = export_tiny(trained_checkpoint, tmp_path / "m.onnx")
    qdq = calibrate_onnx(model, synth_data, target=target, num_images=16, accuracy=False, show_progress=False).output
    logger, builder, network, config = _network(trt, major, qdq)
    if major < 11:
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)   # the float layers (upsampling, pre/post) may use half
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    info = _layer_info(trt, logger, plan)
    assert "Int8" in info or "INT8" in info, info[:2000]


def test_fp32_onnx_plus_cache_builds_with_the_implicit_calibrator(trained_checkpoint, synth_data, tmp_path):
    trt, major = _trt()
    if major >= 11:
        pytest.skip("TensorRT 11 has no implicit calibrators")
    from fcn_edge.calib import calibrate_onnx
    from fcn_edge.engine.trt_build import make_cache_calibrator
    from tests.calib.tiny_trained import export_tiny

    model = export_tiny(trained_checkpoint, tmp_path / "m.onnx")
    version = ".".join(trt.__version__.split(".")[:3])
    report = calibrate_onnx(model, synth_data, target="trt8" if major < 10 else "trt10", num_images=16,
                            accuracy=False, cache_trt_version=version, show_progress=False)
    logger, builder, network, config = _network(trt, major, model)
    config.set_flag(trt.BuilderFlag.INT8)
    calibrator = make_cache_calibrator(trt, "IInt8EntropyCalibrator2", report.cache.read_bytes())
    asked = []
    original = calibrator.get_batch

    def get_batch(names, *args):
        asked.append(names)
        return original(names, *args)

    calibrator.get_batch = get_batch
    config.int8_calibrator = calibrator
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    assert not asked, "TensorRT ignored the cache and asked for calibration data"
    info = _layer_info(trt, logger, plan)
    assert "Int8" in info or "INT8" in info
    names = set(json.loads(report.ranges_json.read_text())["tensors"])
    assert any(name in info for name in names)
