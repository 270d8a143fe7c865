"""What to export: typed options shared by the CLI and the Python API.

Kept free of torch/onnx imports so ``fcn-edge export --help`` and the parsers below
stay instant; :func:`fcn_edge.export.export_onnx` does the heavy work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

from fcn_edge.errors import FcnEdgeError
from fcn_edge.artifacts.modelinfo import CHANNEL_ORDERS, GEOMETRIES, parse_size

IO_MODES = ("frames", "raw")
OUTPUTS = ("labels", "confidence", "logits")
CONFIDENCE_DTYPES = ("uint8", "float16")
DYNAMIC_AXES = ("batch", "height", "width")
DEFAULT_SIZE = (512, 512)  # when neither --size nor the checkpoint names one
DEFAULT_OPSET = 17  # TensorRT 8.5/8.6 (JetPack 5.1 / 6.0) parse opset <= 17
# The exporter writes opset 18 and passes.downgrade_opset rewrites what changed in 18;
# below 15 more ops differ (Shape-15, Mul-14, ...).  TensorRT 8.5, the oldest family
# targeted, parses up to 17, so nothing here needs older opsets.
MIN_OPSET = 15


class ExportConfigError(FcnEdgeError):
    """An export option has a value that cannot work."""


@dataclass(frozen=True)
class ShapeRange:
    """``min <= opt <= max`` for one dynamic dimension (a TensorRT optimisation profile axis)."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not (1 <= self.min <= self.opt <= self.max):
            raise ExportConfigError(f"shape range must satisfy 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")

    def as_list(self) -> list[int]:
        return [self.min, self.opt, self.max]


@dataclass
class ExportConfig:
    """Options of one export.

    ``size`` is ``(H, W)``; ``None`` takes the checkpoint's ``input_size`` or 512x512.
    ``batch`` is the static batch, or the optimal one when ``"batch"`` is in
    ``dynamic``.  ``min_shape``/``max_shape`` are ``(N, H, W)`` bounds of the dynamic
    axes (static axes ignore them); ``None`` picks defaults (batch 1..max(4, N),
    H/W from half to twice the optimal size).
    """

    size: tuple[int, int] | None = None
    batch: int = 1
    dynamic: tuple[str, ...] = ()
    min_shape: tuple[int, int, int] | None = None
    max_shape: tuple[int, int, int] | None = None
    opset: int = DEFAULT_OPSET
    geometry: str = "aligned"
    io: str = "frames"
    outputs: tuple[str, ...] = ("labels",)
    confidence_dtype: str = "uint8"
    input_channel_order: str | None = None  # camera order; None keeps the checkpoint's
    fp16_weights: bool = False
    keep_debug_metadata: bool = False  # keep the exporter's per-node stack traces (source paths of this machine)
    verify: bool = True
    verify_frames: int = 3
    logits_rtol: float = 1e-4
    min_label_agreement: float = 0.9999

    def __post_init__(self) -> None:
        if self.size is not None:
            self.size = tuple(int(v) for v in self.size)  # type: ignore[assignment]
            if len(self.size) != 2 or min(self.size) < 1:
                raise ExportConfigError(f"size must be two positive numbers (H, W), got {self.size}")
        self.batch = int(self.batch)
        if self.batch < 1:
            raise ExportConfigError(f"batch must be at least 1, got {self.batch}")
        self.dynamic = tuple(dict.fromkeys(self.dynamic))
        bad = [a for a in self.dynamic if a not in DYNAMIC_AXES]
        if bad:
            raise ExportConfigError(f"--dynamic takes batch, height and/or width, got {', '.join(bad)}")
        if self.geometry not in GEOMETRIES:
            raise ExportConfigError(f"geometry must be paper or aligned, got {self.geometry!r}")
        if self.io not in IO_MODES:
            raise ExportConfigError(f"io must be frames or raw, got {self.io!r}")
        self.outputs = tuple(dict.fromkeys(self.outputs))
        bad = [o for o in self.outputs if o not in OUTPUTS]
        if bad or not self.outputs:
            raise ExportConfigError(f"outputs must be one or more of labels, confidence, logits; got {','.join(bad) or 'nothing'}")
        if self.confidence_dtype not in CONFIDENCE_DTYPES:
            raise ExportConfigError(f"confidence dtype must be uint8 or float16, got {self.confidence_dtype!r}")
        if self.input_channel_order is not None:
            self.input_channel_order = self.input_channel_order.upper()
            if self.input_channel_order not in CHANNEL_ORDERS:
                raise ExportConfigError(f"input channel order must be BGR or RGB, got {self.input_channel_order!r}")
        self.opset = int(self.opset)
        if self.opset < MIN_OPSET:
            raise ExportConfigError(f"opset {self.opset} is too old; use {MIN_OPSET} or newer (17 for TensorRT 8.5/8.6, the default)")
        if self.verify_frames < 1:
            raise ExportConfigError("verify_frames must be at least 1")

    def replace(self, **changes) -> "ExportConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ResolvedShapes:
    """Concrete shapes of one export: the example (optimal) shape and the dynamic ranges."""

    batch: int
    height: int
    width: int
    ranges: dict[str, ShapeRange]  # only the dynamic axes

    @property
    def is_dynamic(self) -> bool:
        return bool(self.ranges)

    def facts(self) -> dict[str, list[int]] | None:
        """The ``dynamic`` field of the export facts: every axis, static ones as [v, v, v]."""
        if not self.ranges:
            return None
        opt = {"batch": self.batch, "height": self.height, "width": self.width}
        return {axis: (self.ranges[axis].as_list() if axis in self.ranges else [opt[axis]] * 3) for axis in DYNAMIC_AXES}


def resolve_shapes(config: ExportConfig, size: tuple[int, int]) -> ResolvedShapes:
    """Fill in dynamic-axis defaults and check user bounds against the optimal shape."""
    opt = {"batch": config.batch, "height": size[0], "width": size[1]}
    given_min = dict(zip(DYNAMIC_AXES, config.min_shape)) if config.min_shape else {}
    given_max = dict(zip(DYNAMIC_AXES, config.max_shape)) if config.max_shape else {}
    defaults_min = {"batch": 1, "height": max(1, size[0] // 2), "width": max(1, size[1] // 2)}
    defaults_max = {"batch": max(4, config.batch), "height": size[0] * 2, "width": size[1] * 2}
    ranges = {}
    for axis in DYNAMIC_AXES:
        if axis not in config.dynamic:
            for bound, given in (("min", given_min), ("max", given_max)):
                if axis in given and given[axis] != opt[axis]:
                    raise ExportConfigError(f"--{bound}-shape sets {axis} to {given[axis]} but {axis} is static "
                                            f"({opt[axis]}); add it to --dynamic or give {opt[axis]}")
            continue
        low = given_min.get(axis, defaults_min[axis])
        high = given_max.get(axis, defaults_max[axis])
        if not low <= opt[axis] <= high:
            raise ExportConfigError(f"dynamic {axis}: the optimal value {opt[axis]} (from --batch/--size) must lie "
                                    f"between --min-shape ({low}) and --max-shape ({high})")
        if low == high:
            raise ExportConfigError(f"dynamic {axis} has min = max = {low}; drop it from --dynamic or widen the range")
        ranges[axis] = ShapeRange(low, opt[axis], high)
    return ResolvedShapes(config.batch, size[0], size[1], ranges)


# ---------------------------------------------------------------------------- parsers
def parse_size_option(text: str) -> tuple[int, int]:
    """``--size HxW`` (or a single number for a square)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ExportConfigError(f"--size: {exc}") from None


def parse_outputs(text: str | Sequence[str]) -> tuple[str, ...]:
    """``labels,confidence,logits`` in any order, at least one."""
    items = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    bad = [p for p in items if p not in OUTPUTS]
    if bad or not items:
        raise ExportConfigError(f"--outputs takes labels, confidence and/or logits separated by commas, got {text!r}")
    return tuple(dict.fromkeys(items))


def parse_dynamic(text: str | Sequence[str]) -> tuple[str, ...]:
    """``--dynamic batch,height,width`` (any subset; ``all`` means the three)."""
    items = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    if items == ["all"]:
        return DYNAMIC_AXES
    bad = [p for p in items if p not in DYNAMIC_AXES]
    if bad or not items:
        raise ExportConfigError(f"--dynamic takes batch, height and/or width separated by commas (or 'all'), got {text!r}")
    return tuple(dict.fromkeys(items))


def parse_shape3(text: str, option: str) -> tuple[int, int, int]:
    """``NxHxW`` for ``--min-shape``/``--max-shape``."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ExportConfigError(f"{option} must look like NxHxW with positive numbers (e.g. 1x256x256), got {text!r}")
    return values  # type: ignore[return-value]
