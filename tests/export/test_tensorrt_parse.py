"""Our exports through TensorRT's own ONNX parser and builder (GPU machines with TensorRT only).

What the lint predicts without TensorRT, checked for real: the graphs parse, ``frames``
and ``labels`` stay UINT8 network I/O, a dynamic export builds with its recorded
min/opt/max profile, and the FP16-weight variant (Casts of FP16 initialisers) builds.
Run: ``python -m pytest -q tests/export/test_tensorrt_parse.py`` on a machine with an
NVIDIA GPU and TensorRT 8.5+ (conftest skips it elsewhere).
"""

from __future__ import annotations

import pytest

from fcn_edge.export import ExportConfig, export_onnx, read_onnx_metadata

pytestmark = pytest.mark.tensorrt


def _parse(path):
    trt = pytest.importorskip("tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    assert ok, errors
    return trt, builder, network


def _build(trt, builder, network, path):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 28)
    _, facts = read_onnx_metadata(path)
    if facts.dynamic:
        profile = builder.create_optimization_profile()
        shapes = [facts.profile(which) for which in ("min", "opt", "max")]
        profile.set_shape(facts.input, *[(n, h, w, 3) for n, h, w in shapes])
        config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


@pytest.mark.parametrize("options", [
    {},
    {"fp16_weights": True},
    {"dynamic": ("batch", "height", "width"), "outputs": ("labels", "confidence")},
    {"size": (100, 130), "outputs": ("labels", "confidence", "logits")},
])
def test_export_parses_and_builds(tiny_checkpoint, tmp_path, options):
    path = export_onnx(tiny_checkpoint, tmp_path / "m.onnx", ExportConfig(**options)).path
    trt, builder, network = _parse(path)
    inputs = {network.get_input(i).name: network.get_input(i).dtype for i in range(network.num_inputs)}
    outputs = {network.get_output(i).name: network.get_output(i).dtype for i in range(network.num_outputs)}
    assert inputs == {"frames": trt.DataType.UINT8}
    assert outputs["labels"] == trt.DataType.UINT8
    assert _build(trt, builder, network, path) is not None
