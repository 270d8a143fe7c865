"""Deserializing a TensorRT engine and reading its I/O: one code path for the builder and the runtime.

``fcn-edge build-engine`` deserializes every engine it builds (proof that it loads, and
the real I/O names, shapes and dtypes for the sidecar); the TensorRT runtime backend
(:mod:`fcn_edge.runtime.tensorrt_backend`) deserializes it again on the device.  Both
must prepare the ``trt.Runtime`` the same way (host code for version-compatible
engines, the DLA core, a separately shipped lean runtime) and read the engine through
the same name-based calls (TensorRT 8.5 to 11), with the same dtype names.

The dtype tables and :class:`EngineIO` (what a sidecar records) are in
:mod:`fcn_edge.artifacts.trt_tables`.  Nothing here imports tensorrt: the functions take
the ``tensorrt`` module and objects they are given, so they run against the tests' TensorRT doubles and cost nothing to
import on a device.
"""

from __future__ import annotations

from typing import Any

from fcn_edge.artifacts.sidecar import EngineLoadSettings
from fcn_edge.artifacts.trt_tables import EngineIO, trt_dtype_name


def read_engine_io(trt: Any, engine: Any, profile: int = 0) -> list[EngineIO]:
    """The engine's I/O tensors through the name-based API (TensorRT 8.5 to 11), in engine order."""
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        ranges = None
        if is_input and any(d < 0 for d in shape):
            low, opt, high = engine.get_tensor_profile_shape(name, profile)
            ranges = (tuple(int(d) for d in low), tuple(int(d) for d in opt), tuple(int(d) for d in high))
        tensors.append(EngineIO(name, is_input, trt_dtype_name(engine.get_tensor_dtype(name)), shape, ranges))
    return tensors


def prepare_runtime(runtime: Any, settings: EngineLoadSettings, lean_runtime: str | None = None) -> Any:
    """Configure a fresh ``trt.Runtime`` for an engine; returns the runtime to deserialize with.

    * ``lean_runtime`` (a path to TensorRT's lean runtime library) is loaded with
      ``IRuntime.load_runtime`` when the engine was built without its own copy
      (``--exclude-lean-runtime``); without a path the runtime is used as it is.
    * Version-compatible engines carry host code that TensorRT runs only when allowed.
    * DLA engines need the DLA core they were built for.
    """
    if settings.load_lean_runtime and lean_runtime:
        runtime = runtime.load_runtime(str(lean_runtime))
    if settings.engine_host_code_allowed:
        runtime.engine_host_code_allowed = True
    if settings.dla_core is not None:
        runtime.DLA_core = settings.dla_core
    return runtime
