"""fcn-edge's TensorRT code against TensorRT's REAL Python API, for every version family.

The facts come from NVIDIA's genuine binding wheels (8.6 to 11.4: tests/engine/real_trt.py
downloads them once, imports the real ``tensorrt`` module against a stub libnvinfer and
dumps its classes, properties, signatures and enums) and, for 8.5, from NVIDIA's binding
source (tests/engine/data/trt-8.5-api.json, by tests/engine/trt_api_from_source.py).

What passing proves: every name, property assignment, keyword argument and argument
count that the planner + ``build_engine`` + the TensorRT runner's load/IO path use, for
every option combination a version accepts, exists in that version's bindings; and the
calls follow the plan (tests/engine/trt_call_checks.py).  What it does not prove:
anything TensorRT *does* (parsing, building, numerics, speed) -- that needs a GPU
(tests/engine/test_trt_gpu.py, benchmarks/trt_end_to_end.py).

The controls at the end run plans on the wrong version's bindings and must fail, naming
the missing API: they show the check bites.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from fcn_edge.engine.build_progress import MonitorBars
from fcn_edge.engine.onnx_info import TensorFacts
from fcn_edge.engine.options import BuildOptions
from fcn_edge.engine.plan import BuildRefused, resolve_build_plan
from fcn_edge.artifacts.sidecar import engine_load_settings
from fcn_edge.engine.trt_build import build_engine
from fcn_edge.runtime.trt_load import prepare_runtime
from fcn_edge.artifacts.trt_versions import features_for
from fcn_edge.errors import FcnEdgeError
from tests.engine import real_trt
from tests.engine.conftest import make_facts
from tests.engine.trt_api_from_source import USED, agreement, extract, keep_used
from tests.engine.trt_call_checks import check_build_calls
from tests.engine.trt_double import ApiMismatch, SignatureMismatch, make_recording_tensorrt

# One version per API family (11.4.1 uses 11.4.0.106's bindings: the newest wheel of 11.4).
VERSIONS = ["8.5.2", "8.6.1", "10.0.1", "10.3.0", "10.8.0", "10.16.1", "11.0.0", "11.4.0", "11.4.1"]
CALIB = b"TRT-8601-EntropyCalibration2\nnormalised: 3c010a14\n"

FP32 = make_facts()
QDQ = make_facts(has_qdq=True)
FP16_ONNX = make_facts(float_weight_dtypes=frozenset({"float16"}))
PADDED = make_facts(padded_deconvs=("up8",))
DYNAMIC = make_facts(inputs=(TensorFacts("frames", ("n", "h", "w", 3), "uint8"),),
                     export_info={"dynamic": {"batch": [1, 1, 2], "height": [64, 64, 128], "width": [64, 64, 128]}})
ONNX_KINDS = {"fp32": FP32, "qdq": QDQ, "fp16-onnx": FP16_ONNX, "padded-deconv": PADDED, "dynamic": DYNAMIC}
AXES = {
    "precision": [{"precision": p} for p in ("fp32", "fp16", "int8", "best")],
    "int8": [{}, {"calib_cache": "c.cache"}, {"calib": "images/"}],
    "dla": [{}, {"dla_core": 0}, {"dla_core": 1, "gpu_fallback": True}],
    "compat": [{}, {"version_compatible": True}, {"version_compatible": True, "exclude_lean_runtime": True}],
    "extras": [{}, {"hardware_compat": "ampere+", "timing_cache": "t.cache"}, {"workspace_mib": 64}],
}


def option_combinations():
    """Every BuildOptions the axes allow (BuildOptions itself refuses contradictory ones)."""
    for parts in itertools.product(*AXES.values()):
        merged = {}
        for part in parts:
            merged.update(part)
        try:
            yield BuildOptions(**merged)
        except FcnEdgeError:
            continue


def _reset(trt) -> None:
    trt.calls.clear()
    trt.calibration_cache_seen = None


@pytest.mark.parametrize("version", VERSIONS)
def test_every_accepted_option_combination_uses_only_real_api(version, head8_onnx):
    """Plan + build_engine for each option set the planner accepts, on the strict stand-in of that version."""
    trt = make_recording_tensorrt(version)
    built = refused = 0
    algorithms = ("EntropyCalibration2", "MinMaxCalibration")
    for (kind, facts), options in itertools.product(ONNX_KINDS.items(), option_combinations()):
        for algorithm in (algorithms if options.calib_cache else algorithms[:1]):
            try:
                plan = resolve_build_plan(version, options, facts, calib_cache_algorithm=algorithm)
            except BuildRefused:
                refused += 1
                continue
            _reset(trt)
            try:
                result = build_engine(plan, head8_onnx, trt=trt, calib_cache=CALIB if plan.calibrator else None,
                                      timing_cache=b"old" if plan.timing_cache else None, monitor_bars=MonitorBars())
                check_build_calls(trt, plan, result.engine_bytes)
            except Exception as exc:
                raise AssertionError(f"TensorRT {version}, {kind} ONNX, {options}: {exc}") from exc
            built += 1
    # 146 (8.5) to 405 (8.6-10.3) accepted combinations per family; the rest are refused with a reason
    assert built > 100 and refused > 0, f"{built} option combinations built on {version}, {refused} refused"


@pytest.mark.parametrize("version", VERSIONS)
def test_runtime_preparation_for_every_load_setting(version):
    """prepare_runtime (shared by build-engine's check and the runner) on each version's real Runtime API."""
    feats = features_for(version)
    trt = make_recording_tensorrt(version)
    cases = [dict(version_compatible=False, exclude_lean_runtime=False, dla_core=None)]
    if feats.version_compatible:
        cases += [dict(version_compatible=True, exclude_lean_runtime=False, dla_core=None),
                  dict(version_compatible=True, exclude_lean_runtime=True, dla_core=None)]
    if feats.dla:
        cases.append(dict(version_compatible=False, exclude_lean_runtime=False, dla_core=1))
    for case in cases:
        settings = engine_load_settings(**case)
        runtime = prepare_runtime(trt.Runtime(trt.Logger(trt.Logger.WARNING)), settings, "/opt/libnvinfer_lean.so")
        assert runtime._props.get("engine_host_code_allowed", False) is settings.engine_host_code_allowed
        assert runtime._props["DLA_core"] == (settings.dla_core if settings.dla_core is not None else -1)
        assert (runtime._state.get("loaded_from") is not None) == settings.load_lean_runtime


@pytest.mark.parametrize("version", VERSIONS)
def test_parser_errors_are_read_through_the_real_api(version, head8_onnx):
    from fcn_edge.engine.trt_build import TensorRTBuildError

    trt = make_recording_tensorrt(version, parse_errors=("Unsupported ONNX op: Foo", "second"))
    plan = resolve_build_plan(version, BuildOptions(precision="fp16"), FP32)
    with pytest.raises(TensorRTBuildError, match=r"cannot parse head8.onnx: Unsupported ONNX op: Foo \(\+1 more\)"):
        _build(plan, trt, head8_onnx)


@pytest.mark.parametrize("version", VERSIONS[:-1])
def test_version_table_matches_what_the_real_bindings_have(version):
    """fcn_edge.artifacts.trt_versions was written from release notes; here every row the bindings can show is checked.

    DLA is checked one way only: the bindings of 10.8 to 11.4 still carry DeviceType.DLA and
    the DLA properties, while the library of those releases has no DLA (a fact of the
    library and platform, which names cannot show).
    """
    feats = features_for(version)
    trt = make_recording_tensorrt(version)
    members = lambda enum_: set(enum_.__members__)  # noqa: E731
    config = trt.IBuilderConfig._trt_members
    assert (feats.explicit_batch_flag == "removed") == ("EXPLICIT_BATCH" not in members(trt.NetworkDefinitionCreationFlag))
    assert (feats.strongly_typed_flag == "absent") == ("STRONGLY_TYPED" not in members(trt.NetworkDefinitionCreationFlag))
    assert feats.precision_flags == ({"FP16", "INT8"} <= members(trt.BuilderFlag))
    assert feats.calibrators == (hasattr(trt, "IInt8EntropyCalibrator2") and "int8_calibrator" in config)
    assert feats.progress_monitor == (hasattr(trt, "IProgressMonitor") and "progress_monitor" in config)
    assert feats.version_compatible == ({"VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"} <= members(trt.BuilderFlag))
    assert feats.hardware_compat == (hasattr(trt, "HardwareCompatibilityLevel") and "hardware_compatibility_level" in config)
    if feats.dla:
        assert "DLA" in members(trt.DeviceType) and {"DLA_core", "default_device_type"} <= set(config)


# ----------------------------------------------------------------------------- runner
def _fake_execute(cuda, dtype):
    """execute_async_v3 over FakeCuda memory: labels = frames[..., 0] % 5 (ArgMax's int64, or int32 on 8.x)."""

    def run(state, stream_handle):
        shape = state["shapes"].get("frames") or (1, 8, 8, 3)
        memory = cuda.memory
        n = int(np.prod(shape))
        frames = memory[state["addresses"]["frames"]][:n].reshape(shape)
        labels = (frames[..., 0] % 5).astype(dtype)
        memory[state["addresses"]["labels"]][: labels.nbytes] = labels.reshape(-1).view(np.uint8)
        return True

    return run


@pytest.mark.parametrize("version", VERSIONS)
def test_tensorrt_runner_loads_and_runs_on_the_real_api(version, monkeypatch, tmp_path, tiny_info):
    from fcn_edge.runtime import tensorrt_backend
    from tests.runtime.test_tensorrt_flow import FAKE_GPU, FakeCuda, write_sidecar

    feats = features_for(version)
    cuda = FakeCuda()
    argmax = "INT64" if "INT64" in make_recording_tensorrt(version).DataType.__members__ else "INT32"  # 8.x: no INT64
    io = [("frames", "INPUT", (-1, 8, 8, 3), "UINT8"), ("labels", "OUTPUT", (-1, 8, 8), argmax)]
    trt = make_recording_tensorrt(version, io=io, execute=_fake_execute(cuda, argmax.lower()), check_engine_prefix=False,
                                  profile_ranges=((1, 8, 8, 3), (2, 8, 8, 3), (4, 8, 8, 3)))
    monkeypatch.setattr(tensorrt_backend, "require", lambda name, purpose=None: trt)
    monkeypatch.setattr(tensorrt_backend, "open_cuda", lambda binding, device_id: cuda)
    monkeypatch.setattr(tensorrt_backend, "probe_gpu", lambda index=0: FAKE_GPU)
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"serialized engine")
    settings = [dict()]
    if feats.version_compatible:
        settings += [dict(vc=True), dict(vc=True, lean=True)]
    if feats.dla:
        settings.append(dict(dla=0))
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    for setting in settings:
        write_sidecar(engine, trt=version, info=tiny_info, **setting)
        _reset(trt)
        lean = "/opt/trt/libnvinfer_lean.so" if setting.get("lean") else None
        profile = 1 if setting == {} else 0  # a non-default profile is selected through set_optimization_profile_async
        with tensorrt_backend.TensorRTRunner(engine, lean_runtime=lean, profile=profile) as runner:
            result = runner.infer(frames)
            np.testing.assert_array_equal(result.labels, frames[..., 0] % 5)
            assert runner.device_memory()["parts"]["activations"] == 1 << 20
        names = {(c.owner, c.name) for c in trt.calls}
        assert {("Runtime", "deserialize_cuda_engine"), ("ICudaEngine", "create_execution_context"),
                ("IExecutionContext", "set_input_shape"), ("IExecutionContext", "set_tensor_address"),
                ("IExecutionContext", "execute_async_v3")} <= names
        assert (("Runtime", "load_runtime") in names) == bool(lean)
        assert (("IExecutionContext", "set_optimization_profile_async") in names) == (profile == 1)


# ----------------------------------------------------------------------------- the facts themselves
@pytest.mark.parametrize("family,tag", [("8.6", "8.6.1"), ("10.3", "10.3.0")])
def test_source_extractor_agrees_with_the_real_bindings(family, tag):
    """The committed source-derived facts of 8.6.1 / 10.3.0 equal the real wheels' on every class fcn-edge uses.

    This is what makes the 8.5 facts (source only, no wheel) trustworthy: the same
    extractor, on the same repository, agrees with the real module of the next releases.
    """
    source = json.loads((real_trt.DATA / f"trt-{tag}-api-from-source.json").read_text())
    live = _live(family)
    result = agreement(source, live, USED)
    assert result["differences"] == []
    assert result["compared"]["names"] > 250 and result["compared"]["signatures"] > 150


def test_committed_85_facts_say_where_they_come_from():
    facts = real_trt.api_facts("8.5")
    assert facts["derived_from_source"] and "tag 8.5.2" in facts["source"]
    assert set(USED) - {"IProgressMonitor", "HardwareCompatibilityLevel"} <= set(facts["classes"]) | set(facts["enums"])
    # 8.5 predates these (they arrived in 8.6 / 10.0): the stand-in of 8.5 must lack them
    assert "IProgressMonitor" not in facts["classes"] and "HardwareCompatibilityLevel" not in facts["enums"]
    assert "engine_host_code_allowed" not in facts["classes"]["Runtime"]["members"]


def test_extractor_reads_the_pybind11_forms_it_claims():
    source = '''
    void bindCore(py::module& m)
    {
        py::class_<IBase, PyBase> base{m, "IBase", Doc::descr};
        py::enum_<IBase::Level>(base, "Level", py::arithmetic()).value("LOW", IBase::kLOW).value("HIGH", IBase::kHIGH)
            .export_values();
        base.def(py::init<>()).def("log", &IBase::log, "severity"_a, "msg"_a);
        py::class_<Derived, IBase>(m, "Derived")
            .def(py::init([](int x) { return new Derived(x); }), py::arg("x") = 3)
            .def_property("size", &Derived::getSize, &Derived::setSize)
            .def_property("fixed", &Derived::getFixed, nullptr)
            .def_property_readonly("count", [](Derived& self) -> int { return self.count(); })
            .def("run", lambdas::run, "stream_handle"_a)
            .def("run", lambdas::run2)
    #if ENABLE_INETWORK_SERIALIZE
            .def("serialize", lambdas::serialize)
    #endif
            .def_static("make", &Derived::make);
        m.attr("Alias") = m.attr("Derived");
        m.def("get_registry", &getRegistry);
    }
    '''
    facts = extract({"pyCore.cpp": source})
    derived = facts["classes"]["Derived"]["members"]
    assert facts["enums"]["IBase.Level"] == {"LOW": 0, "HIGH": 1}
    assert facts["classes"]["IBase"]["members"]["LOW"] == {"kind": "value"}
    assert derived["size"]["kind"] == "property" and derived["fixed"]["kind"] == "readonly"
    assert derived["count"]["kind"] == "readonly" and derived["make"]["kind"] == "static"
    assert derived["run"]["signatures"] == [[{"name": "stream_handle", "default": False, "keyword": True, "star": ""}],
                                            None]
    assert derived["log"]["kind"] == "method"  # inherited from IBase
    assert "serialize" not in derived
    assert facts["classes"]["Derived"]["init"] == [[{"name": "x", "default": True, "keyword": True, "star": ""}]]
    assert facts["classes"]["IBase"]["init"] == [[]]
    assert facts["module"]["Alias"] == "class" and facts["module"]["get_registry"] == "function"
    assert set(keep_used(facts)["classes"]) == set()


def _live(family):
    try:
        return real_trt.live_facts(family)
    except real_trt.Unavailable as exc:
        pytest.skip(f"TensorRT {family}'s binding wheel is not available here: {exc}")


def test_real_bindings_needed_only_stubbed_libnvinfer_symbols():
    """The wheel's tensorrt.so loaded against stubs of the few factory functions it links to (no TensorRT here)."""
    _live("10.3")
    folder = real_trt.cache_root() / f"tensorrt-cu12-bindings-10.3.0-{real_trt.python_tag()}"  # this interpreter's wheel
    module = folder / "unpacked" / "tensorrt_bindings" / "tensorrt.so"
    needed = real_trt.needed_libraries(module)
    assert {"libnvinfer.so.10", "libnvonnxparser.so.10"} <= set(needed)
    symbols = real_trt.needed_symbols(module)
    assert "createInferBuilder_INTERNAL" in symbols and len(symbols) < 40


# ----------------------------------------------------------------------------- controls: the check bites
def _build(plan, trt, onnx):
    return build_engine(plan, onnx, trt=trt, calib_cache=CALIB if plan.calibrator else None,
                        timing_cache=b"old" if plan.timing_cache else None, monitor_bars=MonitorBars())


def test_control_103_plans_fail_on_110_bindings_naming_precision_flags_and_calibrator(head8_onnx):
    trt11 = make_recording_tensorrt("11.0.0")
    fp16 = resolve_build_plan("10.3.0", BuildOptions(precision="fp16"), FP32)
    with pytest.raises(ApiMismatch, match=r"BuilderFlag\.FP16 does not exist"):
        _build(fp16, trt11, head8_onnx)
    int8 = resolve_build_plan("10.3.0", BuildOptions(precision="int8", calib_cache="c.cache"), FP32)
    with pytest.raises(ApiMismatch, match=r"BuilderFlag\.INT8 does not exist"):
        _build(int8, trt11, head8_onnx)
    # past the flags, the calibrator itself: the class and the config property are both gone in 11
    without_flags = dataclasses.replace(int8, builder_flags=())
    with pytest.raises(ApiMismatch, match="no IInt8EntropyCalibrator2"):
        _build(without_flags, trt11, head8_onnx)
    config = trt11.Builder(trt11.Logger()).create_builder_config()
    with pytest.raises(ApiMismatch, match=r"IBuilderConfig\.int8_calibrator does not exist"):
        config.int8_calibrator = object()


def test_control_86_plans_fail_on_85_bindings_naming_compatibility_api(head8_onnx):
    trt85 = make_recording_tensorrt("8.5.2")
    vc = resolve_build_plan("8.6.1", BuildOptions(precision="fp16", version_compatible=True), FP32)
    with pytest.raises(ApiMismatch, match=r"BuilderFlag\.VERSION_COMPATIBLE does not exist"):
        _build(vc, trt85, head8_onnx)
    hc = resolve_build_plan("8.6.1", BuildOptions(precision="fp16", hardware_compat="ampere+"), FP32)
    with pytest.raises(ApiMismatch, match="no HardwareCompatibilityLevel"):
        _build(hc, trt85, head8_onnx)
    settings = engine_load_settings(version_compatible=True, exclude_lean_runtime=False, dla_core=None)
    with pytest.raises(ApiMismatch, match=r"Runtime\.engine_host_code_allowed does not exist"):
        prepare_runtime(trt85.Runtime(trt85.Logger()), settings)


def test_control_wrong_keywords_readonly_properties_and_overrides_are_refused():
    trt = make_recording_tensorrt("10.3.0")
    builder = trt.Builder(trt.Logger())
    config = builder.create_builder_config()
    with pytest.raises(SignatureMismatch, match=r"set_timing_cache\(<NoneType>, ignore=\)"):
        config.set_timing_cache(None, ignore=False)  # the keyword is ignore_mismatch
    with pytest.raises(SignatureMismatch, match="set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE)
    with pytest.raises(ApiMismatch, match=r"num_DLA_cores is read-only"):
        builder.num_DLA_cores = 2
    with pytest.raises(ApiMismatch, match=r"IBuilderConfig\.max_workspace_size does not exist"):
        config.max_workspace_size = 1 << 20  # removed in 10.0
    with pytest.raises(ApiMismatch, match="has no method 'step_done'"):
        type("Monitor", (trt.IProgressMonitor,), {"step_done": lambda self: True})
    with pytest.raises(SignatureMismatch, match=r"phase_start\(phase_name, parent_phase, num_steps\)"):
        type("Monitor", (trt.IProgressMonitor,), {"phase_start": lambda self, phase_name: None})
    with pytest.raises(ApiMismatch, match="cannot be constructed"):
        trt.IBuilderConfig()
