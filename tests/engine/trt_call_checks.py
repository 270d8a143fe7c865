"""What a correct ``build_engine`` run must have done, read off the stand-in's call record.

Not a second copy of the call list: each check is a property that follows from the plan
and TensorRT's rules (a flag is set iff the plan names it, a profile's shapes are all set
before it is added and the build starts, the engine deserialized is the one just built).
"""

from __future__ import annotations

import types

from fcn_edge.engine.plan import BuildPlan
from tests.engine.trt_double import FAKE_ENGINE_PREFIX, Call


def _only(calls: list[Call], what: str) -> Call:
    assert len(calls) == 1, f"expected one {what}, got {[str(c) for c in calls]}"
    return calls[0]


def _on(trt: types.ModuleType, owner: str, name: str, target: object = None) -> list[Call]:
    return [c for c in trt.calls if c.owner == owner and c.name == name and (target is None or c.target is target)]


def check_build_calls(trt: types.ModuleType, plan: BuildPlan, engine_bytes: bytes) -> None:
    """Assert the recorded calls of one ``build_engine(plan)`` satisfy every rule below."""
    builder_new = _only(_on(trt, "Builder", "__init__"), "Builder(logger)")
    logger = builder_new.args[0]
    assert isinstance(logger, trt.ILogger)
    builder = builder_new.target

    # network: creation flags are exactly the plan's, as bits of the real enum
    create = _only(_on(trt, "Builder", "create_network", builder), "create_network")
    expected_flags = sum(1 << int(trt.NetworkDefinitionCreationFlag[n]) for n in plan.network_flags)
    assert (create.args or (create.kwargs.get("flags", 0),))[0] == expected_flags
    if trt.TRT_FAMILY.startswith("8."):
        assert "EXPLICIT_BATCH" in plan.network_flags, "TensorRT 8 parses ONNX only into explicit-batch networks"
    parser_new = _only(_on(trt, "OnnxParser", "__init__"), "OnnxParser(network, logger)")
    network = parser_new.args[0]
    assert parser_new.args[1] is logger and type(network).__name__ == "INetworkDefinition"
    _only(_on(trt, "OnnxParser", "parse_from_file"), "parse_from_file")

    config = _only(_on(trt, "Builder", "create_builder_config", builder), "create_builder_config").target._state["config"]
    build = _only(_on(trt, "Builder", "build_serialized_network", builder), "build_serialized_network")
    assert build.args[0] is network and build.args[1] is config
    on_config = [c for c in trt.calls if c.target is config]
    assert all(c.seq < build.seq for c in on_config if c.name not in ("get_timing_cache",)), \
        "the builder config must be complete before build_serialized_network"

    # workspace through the memory-pool API (max_workspace_size is gone from 10.0)
    pool = _only(_on(trt, "IBuilderConfig", "set_memory_pool_limit"), "set_memory_pool_limit")
    assert tuple(pool.args) == (trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)

    # builder flags: exactly the plan's, each once, in its order
    flags = [c.args[0] for c in _on(trt, "IBuilderConfig", "set_flag")]
    assert flags == [trt.BuilderFlag[n] for n in plan.builder_flags] and len(set(flags)) == len(flags)
    precision_flag = {"fp16": "FP16", "int8": "INT8"}.get(plan.precision)
    if precision_flag and not plan.strongly_typed:
        assert trt.BuilderFlag[precision_flag] in flags
    if plan.strongly_typed:
        assert not any(f.name in ("FP16", "INT8") for f in flags)

    sets = {c.name: c for c in trt.calls if c.kind == "set" and c.target is config}
    # calibrator: only for a calibration-cache build, and of the class the cache's algorithm names
    if plan.calibrator:
        assert isinstance(sets["int8_calibrator"].args[0], getattr(trt, plan.calibrator))
        assert trt.calibration_cache_seen is not None
    else:
        assert "int8_calibrator" not in sets and not _on(trt, "IBuilderConfig", "set_calibration_profile")

    # optimisation profile: every shape set before the profile is added, once per dynamic input
    profiles = _on(trt, "Builder", "create_optimization_profile")
    if plan.profile:
        _only(profiles, "create_optimization_profile")
        added = _only(_on(trt, "IBuilderConfig", "add_optimization_profile"), "add_optimization_profile")
        profile = added.args[0]
        shapes = [c for c in _on(trt, "IOptimizationProfile", "set_shape") if c.target is profile]
        assert [(c.args[0], tuple(c.args[1]), tuple(c.args[2]), tuple(c.args[3])) for c in shapes] == \
            [(p.name, p.min, p.opt, p.max) for p in plan.profile]
        assert all(c.seq < added.seq for c in shapes)
        calibration_profile = _on(trt, "IBuilderConfig", "set_calibration_profile")
        if plan.calibrator:
            assert _only(calibration_profile, "set_calibration_profile").args[0] is profile
    else:
        assert not profiles and not _on(trt, "IBuilderConfig", "add_optimization_profile")

    # DLA: device type and core on the config, the same core on the runtime
    if plan.dla_core is not None:
        assert sets["default_device_type"].args[0] == trt.DeviceType.DLA
        assert sets["DLA_core"].args[0] == plan.dla_core
        assert ("GPU_FALLBACK" in plan.builder_flags) == plan.gpu_fallback
    else:
        assert "default_device_type" not in sets and "DLA_core" not in sets

    if plan.hardware_compat == "ampere+":
        assert sets["hardware_compatibility_level"].args[0] == trt.HardwareCompatibilityLevel.AMPERE_PLUS
    else:
        assert "hardware_compatibility_level" not in sets
    assert ("VERSION_COMPATIBLE" in plan.builder_flags) == plan.version_compatible
    assert ("EXCLUDE_LEAN_RUNTIME" in plan.builder_flags) == plan.exclude_lean_runtime

    # timing cache: loaded and attached before the build, read back after it
    if plan.timing_cache:
        created = _only(_on(trt, "IBuilderConfig", "create_timing_cache"), "create_timing_cache")
        attached = _only(_on(trt, "IBuilderConfig", "set_timing_cache"), "set_timing_cache")
        ignore = attached.kwargs["ignore_mismatch"] if "ignore_mismatch" in attached.kwargs else attached.args[1]
        assert ignore is False, "a timing cache from another device/version must be rejected, not silently used"
        assert created.seq < attached.seq < build.seq
        assert all(c.seq > build.seq for c in _on(trt, "IBuilderConfig", "get_timing_cache"))
    else:
        assert not _on(trt, "IBuilderConfig", "create_timing_cache")

    # progress: TensorRT's monitor exactly where the version has one
    if plan.progress == "monitor":
        assert isinstance(sets["progress_monitor"].args[0], trt.IProgressMonitor)
    else:
        assert "progress_monitor" not in sets

    # verification: a fresh runtime, set up as the device will, deserializes exactly the built bytes
    runtime_new = _only(_on(trt, "Runtime", "__init__"), "Runtime(logger)")
    runtime = runtime_new.target
    deserialize = _only(_on(trt, "Runtime", "deserialize_cuda_engine"), "deserialize_cuda_engine")
    assert runtime_new.seq > build.seq and deserialize.target is runtime
    assert bytes(deserialize.args[0]) == engine_bytes and engine_bytes.startswith(FAKE_ENGINE_PREFIX)
    runtime_sets = {c.name: c for c in trt.calls if c.kind == "set" and c.target is runtime}
    assert all(c.seq < deserialize.seq for c in runtime_sets.values())
    # the embedded lean runtime is host code TensorRT runs only when allowed (none when excluded)
    assert ("engine_host_code_allowed" in runtime_sets) == (plan.version_compatible and not plan.exclude_lean_runtime)
    assert ("DLA_core" in runtime_sets) == (plan.dla_core is not None)
    if plan.dla_core is not None:
        assert runtime_sets["DLA_core"].args[0] == plan.dla_core
