"""The one module that calls TensorRT: ONNX -> network -> config -> serialized engine.

Everything *what to do* is decided beforehand, in plain tested Python, by
:func:`fcn_edge.engine.plan.resolve_build_plan`; this module only carries the plan
out, call by call, in the order :meth:`BuildPlan.api_calls` lists.  It is written
against TensorRT's documented Python API for 8.5, 8.6, 10.x and 11.x (names that
exist in all of them, chosen per version by the plan) and is exercised in tests
against a recording *test double* of the ``tensorrt`` module.

**It has never run on a real TensorRT.**  ``benchmarks/trt_end_to_end.py`` and
``tests/engine/test_trt_gpu.py`` (marked ``tensorrt``) are the checks to run on a
GPU machine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from fcn_edge.engine.build_progress import MonitorBars
from fcn_edge.engine.plan import BuildPlan
from fcn_edge.artifacts.sidecar import engine_load_settings
from fcn_edge.artifacts.trt_tables import sidecar_io
from fcn_edge.runtime.trt_load import prepare_runtime, read_engine_io
from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import require

log = logging.getLogger(__name__)

class TensorRTBuildError(FcnEdgeError):
    """TensorRT refused the network or the build; the message carries TensorRT's first error."""


@dataclass
class BuiltEngine:
    engine_bytes: bytes
    timing_cache: bytes | None
    io: dict[str, list[dict[str, Any]]]
    log_warnings: list[str] = field(default_factory=list)


def _logger_class(trt: ModuleType) -> type:
    class CapturingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        """Forwards TensorRT's messages to Python logging and keeps the errors for our message."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            if level <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg))
                log.error("TensorRT: %s", msg)
            elif level == int(trt.ILogger.Severity.WARNING):
                self.warnings.append(str(msg))
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return CapturingLogger


def _monitor_class(trt: ModuleType) -> type:
    class ProgressMonitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        """TensorRT 10+'s progress callbacks, forwarded to :class:`MonitorBars` (thread-safe)."""

        def __init__(self, bars: MonitorBars) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars = bars

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._bars.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return self._bars.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            self._bars.phase_finish(phase_name)

    return ProgressMonitor


def make_cache_calibrator(trt: ModuleType, class_name: str, cache: bytes) -> Any:
    """An implicit INT8 calibrator that only replays a calibration cache.

    TensorRT skips calibration when ``read_calibration_cache`` returns a cache, so no
    images (and no pycuda) are needed at build time; ``get_batch`` returns None, which
    ends calibration should TensorRT ask for data (the cache does not match the network).
    """
    base = getattr(trt, class_name)

    class CacheCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._cache = cache

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: Any, *args: Any) -> None:
            return None

        def read_calibration_cache(self, *args: Any) -> bytes:
            return self._cache

        def write_calibration_cache(self, cache: Any, *args: Any) -> None:
            return None

    return CacheCalibrator()


def _flags(enum: Any, names: tuple[str, ...]) -> int:
    value = 0
    for name in names:
        value |= 1 << int(getattr(enum, name))
    return value


def _first_error(logger: Any, fallback: str) -> str:
    return logger.errors[0][:300] if logger.errors else fallback


def build_engine(plan: BuildPlan, onnx_path: "str | Path", *, trt: ModuleType | None = None,
                 calib_cache: bytes | None = None, timing_cache: bytes | None = None,
                 on_phase: Callable[[str], None] | None = None, monitor_bars: MonitorBars | None = None) -> BuiltEngine:
    """Build and verify an engine as ``plan`` says; returns its bytes, I/O and timing cache."""
    trt = trt or require("tensorrt", purpose="to build TensorRT engines")
    phase = on_phase or (lambda name: None)
    logger = _logger_class(trt)()

    phase("parsing the ONNX model")
    builder = trt.Builder(logger)
    network = builder.create_network(_flags(trt.NetworkDefinitionCreationFlag, plan.network_flags))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise TensorRTBuildError(f"TensorRT {plan.trt_version} cannot parse {Path(onnx_path).name}: "
                                 + (errors[0][:300] if errors else _first_error(logger, "unknown parser error"))
                                 + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.dla_core is not None:
        cores = int(builder.num_DLA_cores)
        if plan.dla_core >= cores:
            raise TensorRTBuildError(f"DLA core {plan.dla_core} does not exist here (this device has {cores} DLA cores; "
                                     "Xavier and AGX Orin have 2, Orin NX 1 or 2, Orin Nano none)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    if plan.hardware_compat == "ampere+":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS

    profile = None
    if plan.profile:
        profile = builder.create_optimization_profile()
        for shape in plan.profile:
            profile.set_shape(shape.name, shape.min, shape.opt, shape.max)
        config.add_optimization_profile(profile)

    if plan.calibrator:
        if calib_cache is None:
            raise TensorRTBuildError("the plan uses a calibration cache but none was read")
        config.int8_calibrator = make_cache_calibrator(trt, plan.calibrator, calib_cache)
        if profile is not None:
            config.set_calibration_profile(profile)

    cache = None
    if plan.timing_cache:
        cache = config.create_timing_cache(timing_cache or b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    monitor = None
    if plan.progress == "monitor":
        monitor = _monitor_class(trt)(monitor_bars or MonitorBars())
        config.progress_monitor = monitor

    phase("building the engine (TensorRT is timing kernels; this is the slow part)")
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if monitor_bars is not None:
            monitor_bars.close()
    if serialized is None:
        raise TensorRTBuildError(f"TensorRT {plan.trt_version} could not build the engine: "
                                 + _first_error(logger, "no error message (rerun with -vv for TensorRT's log)"))
    engine_bytes = bytes(serialized)

    new_timing_cache = None
    if plan.timing_cache:
        new_timing_cache = bytes(config.get_timing_cache().serialize())

    phase("verifying the engine deserializes")
    io = inspect_engine(trt, engine_bytes, logger, plan)
    return BuiltEngine(engine_bytes=engine_bytes, timing_cache=new_timing_cache, io=io, log_warnings=list(logger.warnings))


def inspect_engine(trt: ModuleType, engine_bytes: bytes, logger: Any, plan: BuildPlan) -> dict[str, list[dict[str, Any]]]:
    """Deserialize the new engine (proving it loads) and read its real I/O names, shapes and dtypes.

    The runtime is prepared and the engine read exactly as the TensorRT runtime backend
    does on the device (:mod:`fcn_edge.runtime.trt_load`).
    """
    settings = engine_load_settings(version_compatible=plan.version_compatible,
                                    exclude_lean_runtime=plan.exclude_lean_runtime, dla_core=plan.dla_core)
    runtime = prepare_runtime(trt.Runtime(logger), settings)
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise TensorRTBuildError("the engine TensorRT just built does not deserialize: "
                                 + _first_error(logger, "no error message"))
    return sidecar_io(read_engine_io(trt, engine))
