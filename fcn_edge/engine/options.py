"""What the user asked ``fcn-edge build-engine`` for: one typed, validated dataclass.

The same options come from three places, in increasing priority: built-in defaults,
a build profile (``export/profiles/*.toml``) and the command line.  Everything here
is plain data; :mod:`fcn_edge.engine.plan` decides what TensorRT calls they become
for a given TensorRT version.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from fcn_edge.errors import FcnEdgeError

PRECISIONS = ("fp32", "fp16", "int8", "best")
HARDWARE_COMPAT = ("none", "ampere+")
DEFAULT_WORKSPACE_MIB = 1024


@dataclass(frozen=True)
class ShapeSpec:
    """One optimisation-profile shape: ``1x512x512x3`` or ``frames:1x512x512x3``."""

    dims: tuple[int, ...]
    name: str | None = None

    def __str__(self) -> str:
        text = "x".join(str(d) for d in self.dims)
        return f"{self.name}:{text}" if self.name else text


def parse_shape(text: "str | ShapeSpec | None", what: str = "shape") -> ShapeSpec | None:
    """Parse ``[NAME:]D0xD1x...`` (trtexec and Polygraphy users know this form)."""
    if text is None or isinstance(text, ShapeSpec):
        return text
    raw = str(text).strip()
    name = None
    if ":" in raw:
        name, raw = (part.strip() for part in raw.rsplit(":", 1))
        if not name:
            name = None
    if not re.fullmatch(r"\d+(x\d+)*", raw.lower()):
        raise FcnEdgeError(f"{what} {text!r} must look like 1x512x512x3 (optionally NAME:1x512x512x3), positive integers joined by 'x'")
    dims = tuple(int(d) for d in raw.lower().split("x"))
    if any(d < 1 for d in dims):
        raise FcnEdgeError(f"{what} {text!r} has a zero dimension; every dimension must be at least 1")
    return ShapeSpec(dims, name)


@dataclass(frozen=True)
class BuildOptions:
    """The requested build: what a profile or the command line can set."""

    precision: str = "fp16"
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    timing_cache: str | None = None
    min_shape: ShapeSpec | None = None
    opt_shape: ShapeSpec | None = None
    max_shape: ShapeSpec | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compat: str = "none"
    calib: str | None = None          # image source for on-the-fly Q/DQ calibration
    calib_cache: str | None = None    # TensorRT calibration cache for the implicit path
    profile_name: str | None = field(default=None, compare=False)  # where the options came from

    def __post_init__(self) -> None:
        precision = str(self.precision).lower()
        if precision not in PRECISIONS:
            raise FcnEdgeError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        object.__setattr__(self, "precision", precision)
        compat = str(self.hardware_compat).lower()
        if compat in ("ampere_plus", "ampere-plus", "amperePlus".lower()):
            compat = "ampere+"
        if compat not in HARDWARE_COMPAT:
            raise FcnEdgeError(f"hardware compatibility {self.hardware_compat!r} is not one of {', '.join(HARDWARE_COMPAT)}")
        object.__setattr__(self, "hardware_compat", compat)
        if isinstance(self.workspace_mib, bool) or not isinstance(self.workspace_mib, int) or self.workspace_mib < 1:
            raise FcnEdgeError(f"workspace must be a positive number of MiB, got {self.workspace_mib!r}")
        if self.dla_core is not None and (isinstance(self.dla_core, bool) or not isinstance(self.dla_core, int) or self.dla_core < 0):
            raise FcnEdgeError(f"DLA core must be a non-negative integer (0 or 1 on Xavier/Orin), got {self.dla_core!r}")
        for name in ("min_shape", "opt_shape", "max_shape"):
            object.__setattr__(self, name, parse_shape(getattr(self, name), name.replace("_", " ")))
        given = [s is not None for s in (self.min_shape, self.opt_shape, self.max_shape)]
        if any(given) and not all(given):
            raise FcnEdgeError("give all three of --min-shape, --opt-shape and --max-shape (or none, to use the ONNX's recorded profile)")
        if self.exclude_lean_runtime and not self.version_compatible:
            raise FcnEdgeError("--exclude-lean-runtime only applies to version-compatible engines: add --version-compatible")
        if self.gpu_fallback and self.dla_core is None:
            raise FcnEdgeError("--gpu-fallback only applies to DLA builds: add --dla N")
        if self.calib and self.calib_cache:
            raise FcnEdgeError("give either --calib (make a Q/DQ ONNX now) or --calib-cache (TensorRT's implicit calibrator), not both")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_mib) * (1 << 20)

    @property
    def shapes_given(self) -> bool:
        return self.min_shape is not None

    def replace(self, **changes: Any) -> "BuildOptions":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (recorded in the sidecar's ``build.options``)."""
        data = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = str(value) if isinstance(value, ShapeSpec) else value
        return data


# Option name -> (type, choices or None): what a profile may set.  The CLI offers the
# same options; keeping one table means a profile key and a flag cannot drift apart.
OPTION_TYPES: dict[str, tuple[type, tuple | None]] = {
    "precision": (str, PRECISIONS),
    "workspace_mib": (int, None),
    "timing_cache": (str, None),
    "min_shape": (str, None),
    "opt_shape": (str, None),
    "max_shape": (str, None),
    "dla_core": (int, None),
    "gpu_fallback": (bool, None),
    "version_compatible": (bool, None),
    "exclude_lean_runtime": (bool, None),
    "hardware_compat": (str, HARDWARE_COMPAT),
    "calib": (str, None),
    "calib_cache": (str, None),
}
PATH_OPTIONS = ("timing_cache", "calib", "calib_cache")
