"""Option resolution per TensorRT version: calls, flags, network flags, ONNX variant, refusals."""

from __future__ import annotations

import pytest

from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.engine.onnx_info import TensorFacts
from fcn_edge.engine.options import BuildOptions
from fcn_edge.engine.plan import BuildRefused, resolve_build_plan
from fcn_edge.artifacts.trt_versions import features_for, parse_trt_version
from fcn_edge.errors import FcnEdgeError
from tests.engine.conftest import make_facts

FP32 = make_facts()
QDQ = make_facts(has_qdq=True, path=__import__("pathlib").Path("model.int8.onnx"),
                 op_types=frozenset({"Conv", "QuantizeLinear", "DequantizeLinear"}))
FP16_ONNX = make_facts(float_weight_dtypes=frozenset({"float16"}))
PADDED = make_facts(padded_deconvs=("upscore2", "upscore_pool4", "upscore8"))
DYNAMIC = make_facts(inputs=(TensorFacts("frames", ("batch", "height", "width", 3), "uint8"),),
                     export_info={"io": "frames", "dynamic": {"batch": [1, 1, 4], "height": [256, 512, 1024],
                                                              "width": [256, 512, 1024]}})

# (TensorRT, precision, facts, extra options) -> (network flags, builder flags, transforms, strongly typed, progress)
TABLE = [
    ("8.5", "fp16", FP32, {}, ("EXPLICIT_BATCH",), ("FP16",), (), False, "phases"),
    ("8.6", "fp16", FP32, {}, ("EXPLICIT_BATCH",), ("FP16",), (), False, "phases"),
    ("10.3", "fp16", FP32, {}, (), ("FP16",), (), False, "monitor"),
    ("11.4", "fp16", FP32, {}, (), (), ("fp16",), True, "monitor"),
    ("11.0", "fp16", FP16_ONNX, {}, (), (), (), True, "monitor"),
    ("8.5", "fp32", FP32, {}, ("EXPLICIT_BATCH",), (), (), False, "phases"),
    ("10.3", "fp32", FP32, {}, (), (), (), False, "monitor"),
    ("11.4", "fp32", FP32, {}, (), (), (), True, "monitor"),
    ("8.5", "int8", QDQ, {}, ("EXPLICIT_BATCH",), ("INT8",), (), False, "phases"),
    ("8.6", "best", QDQ, {}, ("EXPLICIT_BATCH",), ("INT8", "FP16"), (), False, "phases"),
    ("10.3", "int8", QDQ, {}, (), ("INT8",), (), False, "monitor"),
    ("10.3", "best", QDQ, {}, (), ("INT8", "FP16"), (), False, "monitor"),
    ("11.4", "int8", QDQ, {}, (), (), (), True, "monitor"),
    ("11.4", "best", QDQ, {}, (), (), (), True, "monitor"),
    ("8.5", "int8", FP32, {"calib_cache": "c.cache"}, ("EXPLICIT_BATCH",), ("INT8",), (), False, "phases"),
    ("10.3", "int8", FP32, {"calib_cache": "c.cache"}, (), ("INT8",), (), False, "monitor"),
    ("8.6", "int8", FP32, {"calib": "imgs/"}, ("EXPLICIT_BATCH",), ("INT8",), ("calibrate-qdq",), False, "phases"),
    ("11.4", "int8", FP32, {"calib": "imgs/"}, (), (), ("calibrate-qdq",), True, "monitor"),
    ("8.5", "fp16", PADDED, {"dla_core": 0, "gpu_fallback": True}, ("EXPLICIT_BATCH",), ("FP16", "GPU_FALLBACK"),
     ("unpad-deconv",), False, "phases"),
    ("10.3", "fp16", PADDED, {"dla_core": 1, "gpu_fallback": True}, (), ("FP16", "GPU_FALLBACK"), ("unpad-deconv",),
     False, "monitor"),
    ("8.5", "int8", PADDED, {"dla_core": 0, "gpu_fallback": True, "calib_cache": "c.cache"}, ("EXPLICIT_BATCH",),
     ("INT8", "FP16", "GPU_FALLBACK"), ("unpad-deconv",), False, "phases"),
    ("11.4.1", "fp16", PADDED, {"dla_core": 0, "gpu_fallback": True}, (), ("GPU_FALLBACK",), ("unpad-deconv", "fp16"),
     True, "monitor"),
    ("8.6", "fp16", FP32, {"version_compatible": True, "exclude_lean_runtime": True}, ("EXPLICIT_BATCH",),
     ("FP16", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"), (), False, "phases"),
    ("10.3", "fp16", FP32, {"version_compatible": True}, (), ("FP16", "VERSION_COMPATIBLE"), (), False, "monitor"),
    ("11.4", "fp16", FP32, {"version_compatible": True}, (), ("VERSION_COMPATIBLE",), ("fp16",), True, "monitor"),
]


@pytest.mark.parametrize("trt,precision,facts,extra,net_flags,flags,transforms,strong,progress", TABLE)
def test_resolution_table(trt, precision, facts, extra, net_flags, flags, transforms, strong, progress):
    plan = resolve_build_plan(trt, BuildOptions(precision=precision, **extra), facts)
    assert plan.network_flags == net_flags
    assert plan.builder_flags == flags
    assert plan.transforms == transforms
    assert plan.strongly_typed is strong
    assert plan.progress == progress
    assert plan.precision == ("int8" if precision == "best" and (facts.has_qdq or extra.get("calib"))
                              else ("fp16" if precision == "best" else precision))


def test_api_calls_follow_the_version():
    calls85 = resolve_build_plan("8.5", BuildOptions(precision="int8", calib_cache="c.cache"), FP32).api_calls()
    assert calls85[:2] == ["Builder(logger)", "create_network(EXPLICIT_BATCH)"]
    assert "set_flag(INT8)" in calls85 and "int8_calibrator = IInt8EntropyCalibrator2(cache)" in calls85
    assert not any("progress_monitor" in c for c in calls85)
    calls11 = resolve_build_plan("11.4", BuildOptions(precision="fp16", timing_cache="t.cache"), FP32).api_calls()
    assert calls11[1] == "create_network(0)"
    assert not any(c.startswith("set_flag") or "calibrator" in c for c in calls11)
    assert calls11.index("create_timing_cache(cache)") < calls11.index("build_serialized_network(network, config)")
    assert calls11[calls11.index("build_serialized_network(network, config)") + 1] == "get_timing_cache().serialize()"
    assert "progress_monitor = IProgressMonitor" in calls11
    dla = resolve_build_plan("10.3", BuildOptions(precision="fp16", dla_core=1, gpu_fallback=True), FP32).api_calls()
    assert ["default_device_type = DLA", "DLA_core = 1"] == dla[dla.index("set_flag(GPU_FALLBACK)") + 1:][:2]
    assert "runtime.DLA_core = 1" in dla
    vc = resolve_build_plan("10.3", BuildOptions(precision="fp16", version_compatible=True), FP32).api_calls()
    assert "engine_host_code_allowed = True" in vc
    hc = resolve_build_plan("8.6", BuildOptions(hardware_compat="ampere+"), FP32).api_calls()
    assert "hardware_compatibility_level = AMPERE_PLUS" in hc


def test_calibrator_follows_the_cache_algorithm_and_deprecation_is_warned():
    plan = resolve_build_plan("10.3", BuildOptions(precision="int8", calib_cache="c"), FP32,
                              calib_cache_algorithm="MinMaxCalibration")
    assert plan.calibrator == "IInt8MinMaxCalibrator"
    assert any("deprecates the implicit INT8 calibrator" in w for w in plan.warnings)
    assert not resolve_build_plan("8.6", BuildOptions(precision="int8", calib_cache="c"), FP32).warnings
    with pytest.raises(BuildRefused, match="LegacyCalibration"):
        resolve_build_plan("8.6", BuildOptions(precision="int8", calib_cache="c"), FP32, calib_cache_algorithm="LegacyCalibration")


def test_best_resolution():
    assert resolve_build_plan("10.3", BuildOptions(precision="best"), FP32).precision == "fp16"
    assert resolve_build_plan("10.3", BuildOptions(precision="best", calib_cache="c"), FP32).precision == "int8"
    best11 = resolve_build_plan("11.4", BuildOptions(precision="best"), FP32)
    assert (best11.precision, best11.transforms) == ("fp16", ("fp16",))
    assert any("best" in n for n in best11.notes)
    # DLA + best: INT8 only with a calibration cache, else FP16 on the DLA
    assert resolve_build_plan("8.5", BuildOptions(precision="best", dla_core=0, gpu_fallback=True), PADDED).precision == "fp16"


def test_calibrate_target_per_version():
    for trt, target in (("8.5", "trt8"), ("8.6", "trt8"), ("10.3", "trt10"), ("11.4", "trt11")):
        assert resolve_build_plan(trt, BuildOptions(precision="int8", calib="imgs"), FP32).calibrate_target == target


REFUSALS = [
    ("11.4", BuildOptions(precision="int8", calib_cache="c"), FP32, "no INT8 calibrators"),
    ("10.3", BuildOptions(precision="int8"), FP32, "needs INT8 scales"),
    ("10.3", BuildOptions(precision="fp16"), QDQ, "has Q/DQ nodes"),
    ("10.3", BuildOptions(precision="int8", calib_cache="c"), QDQ, "already quantized"),
    ("8.6", BuildOptions(precision="fp32"), FP16_ONNX, "FP16 ONNX"),
    ("10.3", BuildOptions(precision="fp16", calib="imgs"), FP32, "only make sense"),
    ("10.8", BuildOptions(precision="fp16", dla_core=0), FP32, "DLA is absent from TensorRT 10.8 to 11.4.0"),
    ("11.4.0", BuildOptions(precision="fp16", dla_core=0), FP32, "DLA is absent"),
    ("8.5", BuildOptions(precision="fp32", dla_core=0), FP32, "DLA runs FP16 or INT8 only"),
    ("8.5", BuildOptions(precision="int8", dla_core=0), QDQ, "implicit entropy calibrator"),
    ("8.6", BuildOptions(precision="fp16", dla_core=0, version_compatible=True), FP32, "version-compatible DLA"),
    ("8.5", BuildOptions(precision="fp16", version_compatible=True), FP32, "8.6 or newer"),
    ("8.5", BuildOptions(precision="fp16", hardware_compat="ampere+"), FP32, "8.6 or newer"),
    ("8.6", BuildOptions(precision="fp16", hardware_compat="ampere+", dla_core=0), FP32, "cannot be combined with --dla"),
    ("8.6", BuildOptions(precision="fp16"), make_facts(opset=18), "opset <= 17"),
    ("10.3", BuildOptions(precision="fp16", dla_core=0, gpu_fallback=True), DYNAMIC, "DLA needs static shapes"),
    ("10.3", BuildOptions(), make_facts(inputs=(TensorFacts("frames", ("b", 512, 512, 3), "uint8"),)),
     "records no shape ranges"),
    ("10.3", BuildOptions(), make_facts(inputs=(TensorFacts("frames", ("b", 512, 512, 3), "uint8"),),
                                        export_info={"dynamic": {"batch": [1, 2]}}), "missing or malformed"),
]


@pytest.mark.parametrize("trt,options,facts,needle", REFUSALS)
def test_refusals_are_one_sentence(trt, options, facts, needle):
    with pytest.raises(BuildRefused) as info:
        resolve_build_plan(trt, options, facts)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_hardware_compat_checks_the_build_gpu():
    xavier = GpuInfo("Xavier", (7, 2), integrated=True)
    with pytest.raises(BuildRefused, match="sm 7.2"):
        resolve_build_plan("8.6", BuildOptions(hardware_compat="ampere+"), FP32, gpu=xavier)
    plan = resolve_build_plan("10.3", BuildOptions(hardware_compat="ampere+"), FP32, gpu=GpuInfo("Orin", (8, 7), True))
    assert plan.hardware_compat == "ampere+" and any("Jetson" in w for w in plan.warnings)


def test_opset_above_known_limit_is_a_warning_on_10_and_11():
    plan = resolve_build_plan("10.3", BuildOptions(), make_facts(opset=21))
    assert any("opset 21" in w for w in plan.warnings)


def test_profiles_from_recorded_ranges_and_from_options():
    plan = resolve_build_plan("10.3", BuildOptions(), DYNAMIC)
    (shape,) = plan.profile
    assert (shape.name, shape.min, shape.opt, shape.max) == ("frames", (1, 256, 256, 3), (1, 512, 512, 3), (4, 1024, 1024, 3))
    assert "set_shape(frames, [1, 256, 256, 3], [1, 512, 512, 3], [4, 1024, 1024, 3])" in plan.api_calls()
    given = BuildOptions(min_shape="frames:1x320x320x3", opt_shape="1x320x320x3", max_shape="1x320x320x3")
    assert resolve_build_plan("10.3", given, DYNAMIC).profile[0].pinned
    # pinned dynamic shapes are fine for DLA
    resolve_build_plan("10.3", given.replace(dla_core=0, gpu_fallback=True), DYNAMIC)
    with pytest.raises(BuildRefused, match="axis 3 of 'frames' is fixed at 3"):
        resolve_build_plan("10.3", BuildOptions(min_shape="1x2x2x4", opt_shape="1x2x2x4", max_shape="1x2x2x4"), DYNAMIC)
    with pytest.raises(BuildRefused, match="min <= opt <= max"):
        resolve_build_plan("10.3", BuildOptions(min_shape="2x64x64x3", opt_shape="1x64x64x3", max_shape="2x64x64x3"), DYNAMIC)
    with pytest.raises(BuildRefused, match="no input named 'input'"):
        resolve_build_plan("10.3", BuildOptions(min_shape="input:1x3x64x64", opt_shape="1x3x64x64",
                                                max_shape="1x3x64x64"), DYNAMIC)
    # static ONNX: no profile; shapes must equal the fixed shape
    assert resolve_build_plan("10.3", BuildOptions(min_shape="1x512x512x3", opt_shape="1x512x512x3",
                                                   max_shape="1x512x512x3"), FP32).profile == ()
    raw = make_facts(inputs=(TensorFacts("input", ("n", 3, "h", "w"), "float32"),),
                     export_info={"io": "raw", "dynamic": {"batch": [1, 2, 8], "height": [64, 128, 256], "width": [64, 128, 256]}})
    assert resolve_build_plan("8.6", BuildOptions(), raw).profile[0].max == (8, 3, 256, 256)


def test_version_table_facts():
    assert features_for("10.7").dla and not features_for("10.8").dla
    assert not features_for("11.4.0").dla and features_for("11.4.1").dla
    assert features_for("10.1").calibrators_deprecated and not features_for("10.0").calibrators_deprecated
    assert not features_for("8.5").version_compatible and features_for("8.6").version_compatible
    with pytest.raises(FcnEdgeError, match="too old"):
        features_for("8.4")
    with pytest.raises(FcnEdgeError, match="LLM preview"):
        features_for("9.3")
    assert str(parse_trt_version("10.3.0.30")) == "10.3.0.30"
    assert parse_trt_version("8.6.2.3") > parse_trt_version("8.6.1")
    with pytest.raises(FcnEdgeError):
        parse_trt_version("ten")


def test_options_validation():
    with pytest.raises(FcnEdgeError, match="precision 'fp8'"):
        BuildOptions(precision="fp8")
    with pytest.raises(FcnEdgeError, match="all three"):
        BuildOptions(min_shape="1x3x4x4")
    with pytest.raises(FcnEdgeError, match="--version-compatible"):
        BuildOptions(exclude_lean_runtime=True)
    with pytest.raises(FcnEdgeError, match="--dla"):
        BuildOptions(gpu_fallback=True)
    with pytest.raises(FcnEdgeError, match="either --calib"):
        BuildOptions(calib="a", calib_cache="b")
    with pytest.raises(FcnEdgeError, match="1x512x512x3"):
        BuildOptions(min_shape="1*512", opt_shape="1", max_shape="1")
