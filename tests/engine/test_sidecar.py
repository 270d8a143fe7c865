"""Engine sidecar: schema, atomic pair writes, and the checks made when loading an engine."""

from __future__ import annotations

import json
import os

import pytest

from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.artifacts.sidecar import (RuntimeEnvironment, check_sidecar, load_settings, make_sidecar, prepare_engine_load,
                                     read_sidecar, sidecar_path_for, write_engine_and_sidecar)
from fcn_edge.artifacts.trt_versions import parse_trt_version
from fcn_edge.errors import ArtifactError
from fcn_edge.artifacts.modelinfo import ModelInfo

ORIN = GpuInfo("Orin", (8, 7), integrated=True)
RTX3080 = GpuInfo("NVIDIA GeForce RTX 3080", (8, 6))
A10 = GpuInfo("NVIDIA A10", (8, 6))
T4 = GpuInfo("Tesla T4", (7, 5))
ENGINE = b"\x00fake engine bytes written by a test\xff" * 10


def sidecar_dict(trt="8.6.2", gpu=ORIN, vc=False, lean=False, hc="none", dla=None, precision="fp16"):
    info = ModelInfo(arch="fcn8s", num_classes=3, geometry="aligned", class_names=["bg", "road", "car"])
    return make_sidecar(
        engine_bytes=ENGINE, engine_name="m.fp16.engine", trt_version=trt, gpu=gpu, precision=precision,
        io={"inputs": [{"name": "frames", "shape": [1, 64, 64, 3], "dtype": "uint8", "profile": None}],
            "outputs": [{"name": "labels", "shape": [1, 64, 64], "dtype": "uint8"}]},
        source_name="m.onnx", source_sha256="b" * 64, source_opset=17, build={"options": {"precision": precision}},
        version_compatible=vc, exclude_lean_runtime=lean, hardware_compat=hc, dla_core=dla, gpu_fallback=dla is not None,
        model=info.to_dict(), export={"io": "frames"})


def written(tmp_path, **kw):
    path = tmp_path / "m.fp16.engine"
    write_engine_and_sidecar(path, ENGINE, sidecar_dict(**kw))
    return path


def check(tmp_path, here_trt, here_gpu, **kw):
    side = read_sidecar(written(tmp_path, **kw))
    return check_sidecar(side, RuntimeEnvironment(parse_trt_version(here_trt), here_gpu), engine_bytes=ENGINE)


def test_schema_round_trip(tmp_path):
    path = written(tmp_path)
    assert sidecar_path_for(path).name == "m.fp16.engine.json"
    data = json.loads(sidecar_path_for(path).read_text())
    assert data["format"] == "fcn-edge engine sidecar" and data["schema_version"] == 1
    assert data["tensorrt"] == {"version": "8.6.2", "version_compatible": False, "exclude_lean_runtime": False,
                                "hardware_compatibility": "none"}
    assert data["gpu"]["compute_capability"] == "8.7" and data["gpu"]["name"] == "Orin"
    assert data["model"]["class_names"] == ["bg", "road", "car"] and len(data["model"]["palette"]) == 3
    assert data["io"]["outputs"][0] == {"name": "labels", "shape": [1, 64, 64], "dtype": "uint8"}
    assert data["source_onnx"]["sha256"] == "b" * 64 and data["fcn_edge_version"]
    side = read_sidecar(path)
    assert side.engine_size == len(ENGINE) and side.precision == "fp16" and side.dla_core is None
    assert "TensorRT 8.6.2 on Orin (sm 8.7)" in side.describe()
    assert not list(tmp_path.glob(".fcn-edge-tmp-*"))


def test_same_machine_loads(tmp_path):
    report = check(tmp_path, "8.6.2", ORIN)
    assert report.ok and not report.warnings


@pytest.mark.parametrize("here,vc,ok,needle", [
    ("10.3.0", False, False, "built with TensorRT 8.6.2 but this is TensorRT 10.3.0"),
    ("8.6.1", False, False, "built with TensorRT 8.6.2 but this is TensorRT 8.6.1"),
    ("8.6.3", True, True, "may be faster"),
    ("10.3.0", True, True, "may be faster"),             # 8 -> 10 allowed for version-compatible engines
    ("11.4.0", True, False, "only from 10"),              # 8 -> 11 is not
    ("8.6.1", True, False, "newer than this TensorRT 8.6.1"),
])
def test_tensorrt_version_rules(tmp_path, here, vc, ok, needle):
    report = check(tmp_path, here, ORIN, vc=vc)
    assert report.ok is ok
    assert needle in " ".join(report.errors + report.warnings)


def test_ten_to_eleven_is_allowed_for_version_compatible(tmp_path):
    assert check(tmp_path, "11.4.1", A10, trt="10.8.0", gpu=A10, vc=True).ok
    assert not check(tmp_path, "11.4.1", A10, trt="10.8.0", gpu=A10, vc=False).ok


def test_gpu_rules(tmp_path):
    report = check(tmp_path, "10.3.0", T4, trt="10.3.0", gpu=RTX3080)
    assert not report.ok and "built for NVIDIA GeForce RTX 3080 (sm 8.6) but this GPU is Tesla T4 (sm 7.5)" in report.errors[0]
    same_sm = check(tmp_path, "10.3.0", A10, trt="10.3.0", gpu=RTX3080)
    assert same_sm.ok and "same sm 8.6" in same_sm.warnings[0]
    assert check(tmp_path, "10.3.0", GpuInfo("H100", (9, 0)), trt="10.3.0", gpu=RTX3080, hc="ampere+").ok
    bad = check(tmp_path, "10.3.0", T4, trt="10.3.0", gpu=RTX3080, hc="ampere+")
    assert "needs sm 8.0 or newer" in bad.errors[0]
    unknown = check(tmp_path, "8.6.2", None)
    assert unknown.ok and "could not query" in unknown.warnings[0]
    dla = check(tmp_path, "8.6.2", RTX3080, dla=0, trt="8.6.2", gpu=ORIN)
    assert any("DLA core 0" in e for e in dla.errors)


def test_mismatched_pair_is_detected(tmp_path):
    path = written(tmp_path)
    side = read_sidecar(path)
    env = RuntimeEnvironment(parse_trt_version("8.6.2"), ORIN)
    other = ENGINE[:-1] + b"\x00"
    assert "SHA-256 differs" in check_sidecar(side, env, engine_bytes=other).errors[0]
    assert "has 3 bytes" in check_sidecar(side, env, engine_bytes=b"abc").errors[0]


def test_crash_between_the_two_renames_is_detected(tmp_path, monkeypatch):
    """Simulate dying after the engine rename, before the sidecar rename."""
    path = written(tmp_path)
    real_replace = os.replace
    calls = []

    def dying_replace(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt("power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    new_engine = b"a different, newer engine" * 5
    with pytest.raises(KeyboardInterrupt):
        write_engine_and_sidecar(path, new_engine, sidecar_dict())
    monkeypatch.setattr(os, "replace", real_replace)
    assert [str(c).endswith(".engine") for c in calls] == [True, False]   # engine first, then the sidecar
    assert path.read_bytes() == new_engine                               # new engine, old sidecar
    assert not list(tmp_path.glob(".fcn-edge-tmp-*"))                    # temporaries cleaned up
    with pytest.raises(ArtifactError, match="mismatched"):
        prepare_engine_load(path, "8.6.2", ORIN)


def test_prepare_engine_load(tmp_path):
    path = written(tmp_path, vc=True)
    side, data, settings, warnings = prepare_engine_load(path, "8.6.2", ORIN)
    assert data == ENGINE and settings.engine_host_code_allowed and settings.dla_core is None and not warnings
    with pytest.raises(ArtifactError) as info:
        prepare_engine_load(path, "8.5.2", T4)
    message = str(info.value)
    assert "cannot load m.fp16.engine" in message and "8.5.2" in message and "Tesla T4" in message
    lean = load_settings(read_sidecar(written(tmp_path, vc=True, lean=True)))
    assert lean.load_lean_runtime and not lean.engine_host_code_allowed
    assert load_settings(read_sidecar(written(tmp_path, dla=1))).dla_core == 1


def test_unreadable_sidecars_are_one_sentence(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(ENGINE)
    with pytest.raises(ArtifactError, match="has no sidecar x.engine.json"):
        read_sidecar(engine)
    side = sidecar_path_for(engine)
    side.write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_sidecar(engine)
    side.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ArtifactError, match="not an fcn-edge engine sidecar"):
        read_sidecar(engine)
    data = sidecar_dict()
    data["schema_version"] = 99
    side.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="upgrade fcn-edge"):
        read_sidecar(engine)
    data = sidecar_dict()
    del data["gpu"]["compute_capability"]
    side.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="lacks 'gpu.compute_capability'"):
        read_sidecar(engine)


def test_what_the_runtime_sees_when_loading(tmp_path):
    """The checks the TensorRT runtime backend relies on (moved here from its former stand-in checker)."""
    path = written(tmp_path, trt="10.3.0", gpu=ORIN)
    # TensorRT reports a build number on the device (trt.__version__ "10.3.0.26"): same release, loads
    assert prepare_engine_load(path, "10.3.0.26", ORIN)[3] == []
    warned = prepare_engine_load(path, "10.3.0", GpuInfo("Orin NX", (8, 7), integrated=True))[3]
    assert len(warned) == 1 and "Orin NX" in warned[0]
    with pytest.raises(ArtifactError) as info:
        prepare_engine_load(path, "8.6.2", ORIN)
    message = str(info.value)
    assert "\n" not in message
    assert "TensorRT 10.3.0" in message and "TensorRT 8.6.2" in message
    assert "rebuild it here with fcn-edge build-engine" in message
