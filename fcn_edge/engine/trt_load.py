"""Deserializing a TensorRT engine and reading its I/O: one code path for the builder and the runtime.

``fcn-edge build-engine`` deserializes every engine it builds (proof that it loads, and
the real I/O names, shapes and dtypes for the sidecar); the TensorRT runtime backend
(:mod:`fcn_edge.runtime.tensorrt_backend`) deserializes it again on the device.  Both
must prepare the ``trt.Runtime`` the same way (host code for version-compatible
engines, the DLA core, a separately shipped lean runtime) and read the engine through
the same name-based calls (TensorRT 8.5 to 11), with the same dtype names.

Nothing here imports tensorrt: the functions take the ``tensorrt`` module and objects
they are given, so they run against the tests' TensorRT doubles and cost nothing to
import on a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fcn_edge.engine.sidecar import EngineLoadSettings

# TensorRT DataType member name -> dtype name in numpy's spelling (what sidecars record).
TRT_DTYPES: dict[str, str] = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
    "INT64": "int64",  # TensorRT 10+
    "UINT8": "uint8", "BOOL": "bool", "FP8": "float8", "INT4": "int4", "FP4": "float4", "E8M0": "e8m0",
}
# Of those, the ones numpy holds (the others have no host buffer type).
HOST_DTYPES = frozenset({"float32", "float16", "int8", "int32", "int64", "uint8", "bool"})


def trt_type_member(dtype: object) -> str:
    """``trt.DataType.HALF`` (or ``"DataType.HALF"`` / ``"HALF"``) -> ``"HALF"``."""
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    return str(name).upper()


def trt_dtype_name(dtype: object) -> str:
    """The dtype name of a TensorRT DataType (``"float16"``); unknown members keep their lower-cased name."""
    member = trt_type_member(dtype)
    return TRT_DTYPES.get(member, member.lower())


@dataclass(frozen=True)
class EngineIO:
    """One I/O tensor as a deserialized engine reports it (``-1`` marks dynamic dims).

    ``profile`` is ``(min, opt, max)`` of the optimisation profile read, for dynamic inputs.
    """

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None

    def to_sidecar(self) -> dict[str, Any]:
        """The entry of the sidecar's ``io.inputs`` / ``io.outputs`` list."""
        entry: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.is_input:
            entry["profile"] = None if self.profile is None else {
                "min": list(self.profile[0]), "opt": list(self.profile[1]), "max": list(self.profile[2])}
        return entry


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


def sidecar_io(tensors: list[EngineIO]) -> dict[str, list[dict[str, Any]]]:
    """The sidecar's ``io`` block."""
    return {"inputs": [t.to_sidecar() for t in tensors if t.is_input],
            "outputs": [t.to_sidecar() for t in tensors if not t.is_input]}


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
