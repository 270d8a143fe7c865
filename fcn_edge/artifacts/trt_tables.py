"""TensorRT dtype names and the engine I/O record a sidecar stores: tables, no TensorRT.

Both halves use these: ``fcn-edge build-engine`` writes a sidecar's ``io`` block from
:class:`EngineIO`, the TensorRT runtime backend allocates host buffers from the same
dtype names.  Plain Python and no tensorrt import, so a device reads them for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def sidecar_io(tensors: list[EngineIO]) -> dict[str, list[dict[str, Any]]]:
    """The sidecar's ``io`` block."""
    return {"inputs": [t.to_sidecar() for t in tensors if t.is_input],
            "outputs": [t.to_sidecar() for t in tensors if not t.is_input]}
