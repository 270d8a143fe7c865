"""TensorRT versions and what each one can do, as plain data.

The build logic never asks "is this TensorRT 10?" in scattered places: it asks this
table.  Every entry comes from NVIDIA's release notes, API references and migration
guides (see fcn_edge/engine/README.md); none of it has been checked against a real
TensorRT install from this project yet.

| feature                         | 8.5 | 8.6 | 10.0-10.7 | 10.8+ | 11.0-11.4.0 | 11.4.1+ |
| ------------------------------- | --- | --- | --------- | ----- | ----------- | ------- |
| EXPLICIT_BATCH network flag     | req | req | ignored   | ign.  | removed     | removed |
| STRONGLY_TYPED network flag     |  -  |  -  | opt-in    | opt-in| always on   | always  |
| BuilderFlag.FP16 / INT8         | yes | yes | yes       | yes   | removed     | removed |
| implicit INT8 calibrators       | yes | yes | yes (deprecated from 10.1)| | removed | removed |
| IProgressMonitor                |  -  |  -  | yes       | yes   | yes         | yes     |
| VERSION_COMPATIBLE, ampere+     |  -  | yes | yes       | yes   | yes         | yes     |
| DLA                             | yes | yes | yes       |  -    |  -          | yes (AGX Orin, JetPack 7.2.2+) |
| ONNX opset parsed (max)         | 17  | 17  | 20*       | 20*   | 25          | 25      |

(*) conservative: later 10.x parsers take newer opsets; above it is a warning, not an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from fcn_edge.errors import FcnEdgeError


class TrtVersion(NamedTuple):
    """A TensorRT version; compares like a tuple, prints like ``10.3.0``."""

    major: int
    minor: int
    patch: int = 0
    build: int = 0

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return f"{text}.{self.build}" if self.build else text

    @property
    def short(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def release(self) -> tuple[int, int, int]:
        """(major, minor, patch): what compatibility rules compare."""
        return (self.major, self.minor, self.patch)


def parse_trt_version(text: "str | TrtVersion | tuple") -> TrtVersion:
    """``"8.6"``, ``"10.3.0.30"``, ``"11.4.1"`` or a tuple -> :class:`TrtVersion`."""
    if isinstance(text, TrtVersion):
        return text
    if isinstance(text, tuple):
        parts = [int(p) for p in text][:4]
    else:
        match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[.+-]?[A-Za-z].*)?\s*", str(text))
        if not match:
            raise FcnEdgeError(f"TensorRT version {text!r} is not of the form MAJOR.MINOR[.PATCH] (e.g. 8.6 or 10.3.0)")
        parts = [int(p) for p in match.groups() if p is not None]
    if len(parts) < 2:
        raise FcnEdgeError(f"TensorRT version {text!r} needs at least MAJOR.MINOR (e.g. 8.6)")
    return TrtVersion(*parts)


# The oldest TensorRT the engine builder supports: JetPack 5.1's 8.5.  Older releases
# lack build_serialized_network + set_memory_pool_limit as one code path.
MIN_SUPPORTED = TrtVersion(8, 5)
# TensorRT 9 was an LLM-only preview; it is not a target.
KNOWN_MAJORS = (8, 10, 11)


@dataclass(frozen=True)
class TrtFeatures:
    """What one TensorRT version offers the engine builder."""

    version: TrtVersion
    explicit_batch_flag: str      # "required" | "ignored" | "removed"
    strongly_typed_flag: str      # "absent" | "opt-in" | "always"
    precision_flags: bool         # BuilderFlag.FP16 / INT8 exist
    calibrators: bool             # IInt8EntropyCalibrator2 & config.int8_calibrator exist
    calibrators_deprecated: bool
    progress_monitor: bool        # trt.IProgressMonitor + config.progress_monitor
    version_compatible: bool      # BuilderFlag.VERSION_COMPATIBLE / EXCLUDE_LEAN_RUNTIME
    hardware_compat: bool         # config.hardware_compatibility_level
    dla: bool                     # the builder can target DLA at all
    max_onnx_opset: int
    opset_limit_is_hard: bool     # above the limit: error (8.x) rather than warning

    @property
    def strongly_typed_only(self) -> bool:
        return self.strongly_typed_flag == "always"


def features_for(version: "TrtVersion | str | tuple") -> TrtFeatures:
    """The feature set of ``version`` (refuses versions fcn-edge does not target)."""
    v = parse_trt_version(version)
    if v < MIN_SUPPORTED:
        raise FcnEdgeError(f"TensorRT {v} is too old: fcn-edge builds engines with TensorRT 8.5 (JetPack 5.1) or newer")
    if v.major not in KNOWN_MAJORS:
        if v.major == 9:
            raise FcnEdgeError("TensorRT 9.x was an LLM preview release and is not supported: use 8.6, 10.x or 11.x")
        if v.major > max(KNOWN_MAJORS):
            # A future major: assume 11's rules (strongly typed, no calibrators), say so.
            pass
    rel = v.release
    if v.major == 8:
        return TrtFeatures(
            version=v, explicit_batch_flag="required", strongly_typed_flag="absent", precision_flags=True,
            calibrators=True, calibrators_deprecated=False, progress_monitor=False,
            version_compatible=rel >= (8, 6, 0), hardware_compat=rel >= (8, 6, 0), dla=True,
            max_onnx_opset=17, opset_limit_is_hard=True,
        )
    if v.major == 10:
        return TrtFeatures(
            version=v, explicit_batch_flag="ignored", strongly_typed_flag="opt-in", precision_flags=True,
            calibrators=True, calibrators_deprecated=rel >= (10, 1, 0), progress_monitor=True,
            version_compatible=True, hardware_compat=True, dla=rel < (10, 8, 0),
            max_onnx_opset=20, opset_limit_is_hard=False,
        )
    # 11.x and later
    return TrtFeatures(
        version=v, explicit_batch_flag="removed", strongly_typed_flag="always", precision_flags=False,
        calibrators=False, calibrators_deprecated=True, progress_monitor=True,
        version_compatible=True, hardware_compat=True, dla=rel >= (11, 4, 1),
        max_onnx_opset=25, opset_limit_is_hard=False,
    )


def calibrate_target_for(version: TrtVersion) -> str:
    """The ``fcn-edge calibrate --target`` family whose Q/DQ graph this TensorRT parses."""
    if version.major <= 8:
        return "trt8"
    if version.major == 10:
        return "trt10"
    return "trt11"
