"""The thin TensorRT module against a recording TEST DOUBLE of ``tensorrt`` (see trt_double.py).

These tests prove that fcn_edge.engine.trt_build makes exactly the calls the build plan
lists, using only API that each TensorRT version documents.  They do not prove that
real TensorRT accepts them: that is tests/engine/test_trt_gpu.py's job, on a GPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fcn_edge.engine.build import BuildRequest, run_build
from fcn_edge.engine.build_progress import MonitorBars
from fcn_edge.engine.environment import BuildEnvironment
from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.engine.onnx_info import read_onnx_facts
from fcn_edge.engine.options import BuildOptions
from fcn_edge.engine.plan import resolve_build_plan
from fcn_edge.artifacts.sidecar import read_sidecar
from fcn_edge.engine.trt_build import build_engine
from fcn_edge.artifacts.trt_versions import parse_trt_version
from tests.engine.conftest import make_facts
from tests.engine.trt_double import FAKE_ENGINE_PREFIX, make_recording_tensorrt

GPU = GpuInfo("test-double GPU", (8, 7), integrated=True)
CALIB = b"TRT-8601-EntropyCalibration2\nnormalised: 3c010a14\n"
FP32 = make_facts()
QDQ = make_facts(has_qdq=True)
DYNAMIC = make_facts(inputs=(__import__("fcn_edge.engine.onnx_info", fromlist=["TensorFacts"]).TensorFacts(
    "frames", ("n", "h", "w", 3), "uint8"),), export_info={"dynamic": {"batch": [1, 1, 2], "height": [64, 64, 128],
                                                                       "width": [64, 64, 128]}})

CASES = [
    ("8.5.2", BuildOptions(precision="fp16"), FP32),
    ("8.5.2", BuildOptions(precision="int8", calib_cache="c.cache", timing_cache="t.cache"), DYNAMIC),
    ("8.5.2", BuildOptions(precision="int8", calib_cache="c.cache", dla_core=1, gpu_fallback=True), FP32),
    ("8.6.2", BuildOptions(precision="best", version_compatible=True, hardware_compat="ampere+"), QDQ),
    ("8.6.2", BuildOptions(precision="fp16", version_compatible=True, exclude_lean_runtime=True), FP32),
    ("10.3.0", BuildOptions(precision="fp16", timing_cache="t.cache"), DYNAMIC),
    ("10.3.0", BuildOptions(precision="int8", calib_cache="c.cache"), DYNAMIC),
    ("10.3.0", BuildOptions(precision="fp16", dla_core=0, gpu_fallback=True), FP32),
    ("11.4.0", BuildOptions(precision="fp16", timing_cache="t.cache", version_compatible=True), FP32),
    ("11.4.0", BuildOptions(precision="int8", hardware_compat="ampere+"), QDQ),
    ("11.4.1", BuildOptions(precision="fp16", dla_core=0, gpu_fallback=True), FP32),
]


@pytest.mark.parametrize("version,options,facts", CASES)
def test_calls_match_the_plan(version, options, facts, head8_onnx):
    trt = make_recording_tensorrt(version)
    plan = resolve_build_plan(version, options, facts)
    bars = MonitorBars()
    built = build_engine(plan, head8_onnx, trt=trt, calib_cache=CALIB if plan.calibrator else None,
                         timing_cache=b"old" if plan.timing_cache else None, monitor_bars=bars)
    assert trt.calls == plan.api_calls()
    assert built.engine_bytes.startswith(FAKE_ENGINE_PREFIX)
    assert built.io["inputs"][0] == {"name": "frames", "shape": [1, 64, 64, 3], "dtype": "uint8", "profile": None}
    assert built.io["outputs"] == [{"name": "labels", "shape": [1, 64, 64], "dtype": "uint8"}]
    if plan.calibrator:
        assert trt.calibration_cache_seen == CALIB
    if plan.timing_cache:
        assert built.timing_cache == b"timing-cache-from-the-test-double"
    if plan.progress == "monitor":
        assert bars.phases_seen == ["Building engine", "Tactic timing"]


def test_a_plan_for_one_version_does_not_run_on_another(head8_onnx):
    """The double enforces each version's API: a TensorRT 10 FP16 plan uses a flag 11 removed."""
    plan10 = resolve_build_plan("10.3", BuildOptions(precision="fp16"), FP32)
    with pytest.raises(AttributeError, match="FP16"):
        build_engine(plan10, head8_onnx, trt=make_recording_tensorrt("11.4"))
    plan10_monitor = resolve_build_plan("10.3", BuildOptions(precision="fp32"), FP32)
    with pytest.raises(AttributeError, match="IProgressMonitor"):
        build_engine(plan10_monitor, head8_onnx, trt=make_recording_tensorrt("8.6"))


def test_tensorrt_is_imported_lazily_from_sys_modules(head8_onnx, monkeypatch):
    trt = make_recording_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    plan = resolve_build_plan("10.3.0", BuildOptions(), FP32)
    build_engine(plan, head8_onnx)
    assert trt.calls == plan.api_calls()


def test_missing_dla_core_is_one_sentence(head8_onnx):
    plan = resolve_build_plan("8.5", BuildOptions(precision="fp16", dla_core=1, gpu_fallback=True), FP32)
    with pytest.raises(Exception, match="DLA core 1 does not exist here"):
        build_engine(plan, head8_onnx, trt=make_recording_tensorrt("8.5", num_dla_cores=0))


def _environment(version):
    trt = make_recording_tensorrt(version)
    return trt, (lambda: BuildEnvironment(trt=trt, trt_version=parse_trt_version(version), gpu=GPU))


def test_run_build_writes_engine_and_sidecar(tiny_fcn8s_aligned, tmp_path):
    trt, env = _environment("8.6.2")
    out = tmp_path / "m.fp16.engine"
    lines: list[str] = []
    outcome = run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(timing_cache=str(tmp_path / "t.cache")),
                                     output=out), emit=lines.append, environment=env)
    assert outcome.engine_path == out and out.read_bytes().startswith(FAKE_ENGINE_PREFIX)
    side = read_sidecar(out)
    data = side.data
    assert data["tensorrt"]["version"] == "8.6.2" and data["gpu"]["name"] == GPU.name
    assert data["precision"] == "fp16" and data["build"]["builder_flags"] == ["FP16"]
    assert data["build"]["network_flags"] == ["EXPLICIT_BATCH"]
    assert data["source_onnx"]["sha256"] == read_onnx_facts(tiny_fcn8s_aligned).sha256
    assert data["model"]["arch"] == "fcn8s" and len(data["model"]["palette"]) == 5
    assert data["io"]["outputs"][0]["dtype"] == "uint8"
    assert (tmp_path / "t.cache").read_bytes() == b"timing-cache-from-the-test-double"
    assert any(line.startswith("wrote ") for line in lines)
    assert trt.parsed_path == str(tiny_fcn8s_aligned)


def test_run_build_tensorrt11_parses_the_fp16_variant(tiny_fcn8s_aligned, tmp_path, monkeypatch):
    trt, env = _environment("11.4.0")
    seen = []
    original = trt.OnnxParser.parse_from_file

    def spy(self, path):
        seen.append(read_onnx_facts(path).is_fp16)
        return original(self, path)

    monkeypatch.setattr(trt.OnnxParser, "parse_from_file", spy)
    out = tmp_path / "m.engine"
    run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(precision="fp16"), output=out),
              emit=lambda line: None, environment=env)
    assert seen == [True]
    data = read_sidecar(out).data
    assert data["build"]["onnx_variant"] == "converted to FP16" and data["build"]["strongly_typed"] is True
    assert data["build"]["builder_flags"] == []


def test_run_build_dla_parses_the_unpadded_variant(tiny_fcn8s_aligned, tmp_path, monkeypatch):
    import onnx

    trt, env = _environment("8.5.2")
    pads = []
    original = trt.OnnxParser.parse_from_file

    def spy(self, path):
        model = onnx.load(path)
        pads.extend(list(next(a for a in n.attribute if a.name == "pads").ints)
                    for n in model.graph.node if n.op_type == "ConvTranspose")
        return original(self, path)

    monkeypatch.setattr(trt.OnnxParser, "parse_from_file", spy)
    out = tmp_path / "m.dla.engine"
    lines: list[str] = []
    run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(precision="fp16", dla_core=0, gpu_fallback=True),
                           output=out), emit=lines.append, environment=env)
    assert pads == [[0, 0, 0, 0]] * 3
    assert read_sidecar(out).dla_core == 0
    assert any("26 of 26" in line for line in lines)


def test_cache_dir_hit_skips_the_build(tiny_fcn8s_aligned, tmp_path):
    trt, env = _environment("10.3.0")
    cache = tmp_path / "cache"
    lines: list[str] = []
    first = run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(), output=tmp_path / "a.engine",
                                   cache_dir=cache), emit=lines.append, environment=env)
    builds = trt.calls.count("build_serialized_network(network, config)")
    second = run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(), output=tmp_path / "b.engine",
                                    cache_dir=cache), emit=lines.append, environment=env)
    assert not first.cache_hit and second.cache_hit
    assert trt.calls.count("build_serialized_network(network, config)") == builds
    assert (tmp_path / "b.engine").read_bytes() == (tmp_path / "a.engine").read_bytes()
    assert json.loads((tmp_path / "b.engine.json").read_text())["engine"]["file"] == "b.engine"
    third = run_build(BuildRequest(onnx=tiny_fcn8s_aligned, options=BuildOptions(workspace_mib=64), output=tmp_path / "c.engine",
                                   cache_dir=cache), emit=lines.append, environment=env)
    assert not third.cache_hit
    assert any(line.startswith("cache hit") for line in lines) and any(line.startswith("cache miss") for line in lines)


def test_calibration_cache_reaches_the_calibrator(tmp_path):
    from tests.engine.onnx_models import make_head_onnx

    onnx_path = make_head_onnx(tmp_path / "m.onnx")
    cache = tmp_path / "m.calib.cache"
    cache.write_bytes(CALIB)
    trt, env = _environment("8.5.2")
    run_build(BuildRequest(onnx=onnx_path, options=BuildOptions(precision="int8", calib_cache=str(cache))),
              emit=lambda line: None, environment=env)
    assert trt.calibration_cache_seen == CALIB
    side = read_sidecar(Path(tmp_path / "m.int8.engine"))
    assert side.precision == "int8" and side.data["build"]["calib_cache_sha256"]
