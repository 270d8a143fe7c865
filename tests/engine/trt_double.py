"""A recording TEST DOUBLE of the ``tensorrt`` Python module -- not TensorRT.

It offers, per TensorRT version, only the API surface that version documents (8.5:
no VERSION_COMPATIBLE/hardware compatibility/progress monitor; 10.x: no
EXPLICIT_BATCH requirement, STRONGLY_TYPED opt-in; 11.x: no FP16/INT8 builder flags,
no calibrators, no EXPLICIT_BATCH), and records every call fcn_edge.engine.trt_build
makes, in the vocabulary of :meth:`BuildPlan.api_calls`.  It builds nothing: the
"engine" it returns is a labelled byte string.  Tests use it to check that the thin
TensorRT module does exactly what the plan says, with API that exists in each version.
"""

from __future__ import annotations

import enum
import types
from typing import Any

from fcn_edge.artifacts.trt_versions import parse_trt_version

FAKE_ENGINE_PREFIX = b"TEST-DOUBLE-ENGINE (not a TensorRT engine) "


def make_recording_tensorrt(version: str, *, num_dla_cores: int = 2,
                            io: list[tuple[str, str, list[int], str]] | None = None) -> types.ModuleType:
    """A module object standing in for ``tensorrt`` version ``version``; ``.calls`` records calls."""
    v = parse_trt_version(version)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = str(v)
    trt.calls = []
    trt.IS_TEST_DOUBLE = True
    calls: list[str] = trt.calls
    io = io or [("frames", "INPUT", [1, 64, 64, 3], "UINT8"), ("labels", "OUTPUT", [1, 64, 64], "UINT8")]

    net_flags = {"EXPLICIT_BATCH": 0} if v.major == 8 else (
        {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if v.major == 10 else {"STRONGLY_TYPED": 0})
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", net_flags)
    builder_flags = ["GPU_FALLBACK", "TF32"]
    if v.major < 11:
        builder_flags += ["FP16", "INT8"]
    if v.release >= (8, 6, 0):
        builder_flags += ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", {name: i for i, name in enumerate(builder_flags)})
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1})
    trt.DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    trt.DataType = enum.IntEnum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "INT64": 6})
    if v.release >= (8, 6, 0):
        trt.HardwareCompatibilityLevel = enum.IntEnum("HardwareCompatibilityLevel", {"NONE": 0, "AMPERE_PLUS": 1})

    class ILogger:
        Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

        def __init__(self) -> None:
            pass

    trt.ILogger = ILogger

    if v.major >= 10:
        class IProgressMonitor:
            def __init__(self) -> None:
                pass

        trt.IProgressMonitor = IProgressMonitor

    if v.major < 11:
        for name in ("IInt8EntropyCalibrator2", "IInt8EntropyCalibrator", "IInt8MinMaxCalibrator"):
            setattr(trt, name, type(name, (), {"__init__": lambda self: None}))

    config_attrs = {"default_device_type", "DLA_core"}
    if v.major < 11:
        config_attrs.add("int8_calibrator")
    if v.release >= (8, 6, 0):
        config_attrs.add("hardware_compatibility_level")
    if v.major >= 10:
        config_attrs.add("progress_monitor")

    class TimingCache:
        def serialize(self) -> bytes:
            calls.append("get_timing_cache().serialize()")
            return b"timing-cache-from-the-test-double"

    class Profile:
        def set_shape(self, name, low, opt, high) -> None:
            calls.append(f"set_shape({name}, {list(low)}, {list(opt)}, {list(high)})")

    class Config:
        def __init__(self) -> None:
            object.__setattr__(self, "values", {})

        def __setattr__(self, name: str, value: Any) -> None:
            if name not in config_attrs:
                raise AttributeError(f"TensorRT {v} IBuilderConfig has no attribute {name!r} (test double)")
            self.values[name] = value
            if name == "int8_calibrator":
                calls.append(f"int8_calibrator = {type(value).__mro__[1].__name__}(cache)")
            elif name == "progress_monitor":
                calls.append("progress_monitor = IProgressMonitor")
            elif hasattr(value, "name"):
                calls.append(f"{name} = {value.name}")
            else:
                calls.append(f"{name} = {value}")

        def __getattr__(self, name: str) -> Any:
            values = object.__getattribute__(self, "values")
            if name in values:
                return values[name]
            raise AttributeError(name)

        def set_memory_pool_limit(self, pool, size) -> None:
            calls.append(f"set_memory_pool_limit({pool.name}, {size})")

        def set_flag(self, flag) -> None:
            calls.append(f"set_flag({flag.name})")

        def add_optimization_profile(self, profile) -> int:
            calls.append("add_optimization_profile(profile)")
            return 0

        def set_calibration_profile(self, profile) -> None:
            if v.major >= 11:
                raise AttributeError("no set_calibration_profile in TensorRT 11 (test double)")
            calls.append("set_calibration_profile(profile)")

        def create_timing_cache(self, data: bytes) -> TimingCache:
            calls.append("create_timing_cache(cache)")
            self.values["_timing_input"] = data
            return TimingCache()

        def set_timing_cache(self, cache, ignore_mismatch) -> bool:
            calls.append(f"set_timing_cache(cache, ignore_mismatch={ignore_mismatch})")
            return True

        def get_timing_cache(self) -> TimingCache:
            return TimingCache()

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags

    class Builder:
        num_DLA_cores = num_dla_cores

        def __init__(self, logger) -> None:
            assert isinstance(logger, ILogger)
            calls.append("Builder(logger)")
            trt.last_builder = self

        def create_network(self, flags: int = 0) -> Network:
            names = [m.name for m in trt.NetworkDefinitionCreationFlag if flags & (1 << int(m))]
            calls.append(f"create_network({' | '.join(names) if names else '0'})")
            return Network(flags)

        def create_builder_config(self) -> Config:
            calls.append("create_builder_config()")
            self.config = Config()
            return self.config

        def create_optimization_profile(self) -> Profile:
            calls.append("create_optimization_profile()")
            return Profile()

        def build_serialized_network(self, network, config) -> bytes:
            calls.append("build_serialized_network(network, config)")
            monitor = config.values.get("progress_monitor")
            if monitor is not None:
                monitor.phase_start("Building engine", None, 3)
                monitor.phase_start("Tactic timing", "Building engine", 2)
                for step in range(3):
                    assert monitor.step_complete("Building engine", step) is True
                monitor.phase_finish("Tactic timing")
                monitor.phase_finish("Building engine")
            calibrator = config.values.get("int8_calibrator")
            if calibrator is not None:
                trt.calibration_cache_seen = calibrator.read_calibration_cache()
                assert calibrator.get_batch(["frames"]) is None
            return FAKE_ENGINE_PREFIX + f"TensorRT {v}".encode()

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger) -> None:
            calls.append("OnnxParser(network, logger)")

        def parse_from_file(self, path: str) -> bool:
            calls.append("parse_from_file(onnx)")
            trt.parsed_path = path
            return True

    class Engine:
        num_io_tensors = len(io)

        def get_tensor_name(self, index: int) -> str:
            return io[index][0]

        def get_tensor_mode(self, name: str):
            return trt.TensorIOMode[next(m for n, m, _, _ in io if n == name)]

        def get_tensor_shape(self, name: str) -> list[int]:
            return next(s for n, _, s, _ in io if n == name)

        def get_tensor_dtype(self, name: str):
            return trt.DataType[next(d for n, _, _, d in io if n == name)]

        def get_tensor_profile_shape(self, name: str, index: int):
            shape = self.get_tensor_shape(name)
            low = [1 if d < 0 else d for d in shape]
            return low, low, [4 if d < 0 else d for d in shape]

    class Runtime:
        def __init__(self, logger) -> None:
            calls.append("Runtime(logger)")

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "engine_host_code_allowed" and v.release < (8, 6, 0):
                raise AttributeError("engine_host_code_allowed exists from TensorRT 8.6 (test double)")
            calls.append(f"runtime.DLA_core = {value}" if name == "DLA_core" else f"{name} = {value}")

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            calls.append("deserialize_cuda_engine(plan)")
            assert bytes(data).startswith(FAKE_ENGINE_PREFIX)
            return Engine()

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    trt.Logger = ILogger
    return trt
