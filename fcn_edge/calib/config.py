"""What one calibration does: typed options shared by the CLI, the Python API and build-engine.

Kept free of onnx/onnxruntime imports so ``fcn-edge calibrate --help`` stays instant.

Why these defaults
------------------
* ``method="entropy"``: TensorRT's implicit calibrator (EntropyCalibration2) and NVIDIA
  ModelOpt default to it.  ONNX Runtime's entropy calibrator is used with its own default
  histogram, on which the KL search keeps the observed |max| (see
  :data:`DEFAULT_HISTOGRAM_BINS` for why); ``--histogram-bins`` lets it clip.  ``max`` and
  ``percentile`` (99.99 by default) are one flag away.
* ``target="trt8"``: the most compatible family (TensorRT 8.5/8.6 on JetPack 5.1/6.0
  parse ONNX opset <= 17); a Q/DQ graph for trt8 also parses on 10.x and 11.x.
* ``num_images=300``: a few hundred images is where entropy ranges stop moving on
  segmentation data; fewer is fine for a quick look (under 20 is warned about).
* ``keep_float=DEFAULT_KEEP_FLOAT``: measured on the demo data, see
  benchmarks/RESULTS.md ("calibrate: default keep-float") and :data:`DEFAULT_KEEP_FLOAT`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from fcn_edge.errors import FcnEdgeError

METHODS = ("entropy", "max", "percentile")
TARGETS = ("trt8", "trt10", "trt11")
QUANTIZERS = ("ort", "modelopt")
# Where Q/DQ go.  tensorrt: only on the inputs of quantized ops (TensorRT fuses Conv+ReLU
# and quantizes after; NVIDIA ModelOpt's layout).  onnxruntime: also on their outputs, the
# DQ -> Conv -> Q pattern ONNX Runtime's CPU optimiser turns into integer QLinearConv;
# TensorRT accepts it too (it moves Q/DQ across ReLU/MaxPool) but it is not its layout.
PLACEMENTS = ("tensorrt", "onnxruntime")
DEFAULT_TARGET = "trt8"
DEFAULT_METHOD = "entropy"
DEFAULT_PERCENTILE = 99.99
DEFAULT_NUM_IMAGES = 300
FEW_IMAGES = 20                 # fewer calibration images than this is warned about
DEFAULT_EVAL_IMAGES = 20        # held-out images for the label-free agreement check

# Highest ONNX opset each TensorRT family parses in all of its releases (the export
# lint's table, fcn_edge/export/trt_ops.py: 8.5 parses <= 17; 10.0 <= 20; 11.x <= 24).
TARGET_MAX_OPSET = {"trt8": 17, "trt10": 20, "trt11": 24}
# Per-channel Q/DQ (DequantizeLinear's ``axis``) exists from opset 13.
MIN_QDQ_OPSET = 13

# TensorRT version written in the calibration cache header (``TRT-<NV_TENSORRT_VERSION>-...``)
# for each family: JetPack 5.1's 8.5.2 and JetPack 6.1/6.2's 10.3.0, the platforms whose DLA
# still needs the implicit calibrator.  TensorRT 11 has no calibrators: no cache by default.
CACHE_TRT_VERSION = {"trt8": "8.5.2", "trt10": "10.3.0", "trt11": None}

# Operators that get Q/DQ on their inputs (what TensorRT fuses into INT8 kernels).  Relu,
# Slice, ArgMax, Softmax and the other data-movement/post ops stay out, as in NVIDIA's
# ModelOpt; the in-graph pre/post-processing is excluded by node (see graph.py).
QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose", "Add", "Mul", "MaxPool", "AveragePool", "GlobalAveragePool",
                      "Gemm", "MatMul")
WEIGHTED_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")

# Layers kept in float unless --keep-float says otherwise: the three upsampling
# deconvolutions (upscore2, upscore_pool4, upscore8).  Chosen by measuring every candidate
# on the demo data (tiny FCN-8s trained on the synthetic set, two seeds, 40 labelled val
# images, ONNX Runtime CPU; benchmarks/calibrate_keep_float.py, benchmarks/RESULTS.md):
# it had the best worst-seed pixel agreement (99.49 % vs 99.25 % with everything
# quantized) and a mean IU drop <= 0.3 points.  They cost ~0.5 of FCN-8s's ~190 GFLOPs
# at 512x512, so keeping them float costs next to no speed.
DEFAULT_KEEP_FLOAT: tuple[str, ...] = ("ConvTranspose",)

# Histogram sizes of ONNX Runtime's calibrators when not given: its own defaults
# (entropy: 128 bins searched with 128 quantized bins; percentile: 2048 bins).  With
# entropy's defaults the KL search has a single candidate, the observed |max|, so the
# default entropy ranges equal max ranges: every larger histogram (192-1024 bins) let
# the KL search clip ReLU outputs to 13-60 % of their maximum, which cost 1-4 points of
# mean IU and fell under 98 % agreement on the demo data (same benchmark).  NVIDIA
# ModelOpt calls the same calibrator with the same defaults.
DEFAULT_HISTOGRAM_BINS = {"entropy": 128, "percentile": 2048, "max": 0}
DEFAULT_QUANTIZED_BINS = 128


class CalibrationConfigError(FcnEdgeError):
    """A calibration option has a value that cannot work."""


@dataclass
class CalibrationConfig:
    """Options of one calibration (every field has a CLI flag of the same name).

    ``keep_float`` holds layer names (``score_fr``), ONNX node names or op types
    (``ConvTranspose``); ``None`` means :data:`DEFAULT_KEEP_FLOAT`, ``()`` quantizes
    everything quantizable.  ``accuracy`` is ``"auto"`` (on: four metrics when ``val`` is
    given, else label agreement with FP32 on held-out images), ``True`` or ``False``.
    ``sensitivity`` is ``"auto"`` (on for tiny models, under ``sensitivity_auto_params``
    parameters), ``True`` or ``False``; it stops after ``sensitivity_budget_s`` seconds.
    """

    method: str = DEFAULT_METHOD
    percentile: float = DEFAULT_PERCENTILE
    num_images: int = DEFAULT_NUM_IMAGES
    target: str = DEFAULT_TARGET
    keep_float: tuple[str, ...] | None = None
    quantizer: str = "ort"
    placement: str = "tensorrt"
    split: str | None = None                 # dataset split of the image source (datasets only)
    cache: bool | None = None                # TensorRT calibration cache; None: on unless target trt11
    cache_trt_version: str | None = None     # header version; None: CACHE_TRT_VERSION[target]
    val: str | Path | None = None            # labelled dataset for the accuracy report
    val_split: str | None = None
    accuracy: bool | str = "auto"
    eval_images: int = DEFAULT_EVAL_IMAGES   # held-out images for the label-free check
    max_val_images: int | None = None        # cap on --val images (None: all)
    sensitivity: bool | str = "auto"
    sensitivity_budget_s: float = 120.0
    sensitivity_auto_params: int = 2_000_000
    histogram_bins: int | None = None        # entropy/percentile histogram size; None: DEFAULT_HISTOGRAM_BINS
    quantized_bins: int = DEFAULT_QUANTIZED_BINS  # entropy: bins of the quantized distribution
    mean_iu_drop_warn: float = 1.0           # points of mean IU
    agreement_warn: float = 0.98
    memory_budget_mib: int = 1024            # activations held per calibration chunk
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.method = str(self.method).lower()
        if self.method not in METHODS:
            raise CalibrationConfigError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.percentile = float(self.percentile)
        if not 50.0 < self.percentile <= 100.0:
            raise CalibrationConfigError(f"--percentile must be above 50 and at most 100, got {self.percentile:g}")
        self.num_images = int(self.num_images)
        if self.num_images < 1:
            raise CalibrationConfigError(f"--num must be at least 1, got {self.num_images}")
        self.target = str(self.target).lower()
        if self.target not in TARGETS:
            raise CalibrationConfigError(f"--target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        self.quantizer = str(self.quantizer).lower()
        if self.quantizer not in QUANTIZERS:
            raise CalibrationConfigError(f"--quantizer must be ort or modelopt, got {self.quantizer!r}")
        self.placement = str(self.placement).lower()
        if self.placement not in PLACEMENTS:
            raise CalibrationConfigError(f"--placement must be tensorrt or onnxruntime, got {self.placement!r}")
        if self.placement != "tensorrt" and self.quantizer != "ort":
            raise CalibrationConfigError("--placement onnxruntime needs --quantizer ort")
        if self.keep_float is not None:
            self.keep_float = tuple(dict.fromkeys(str(k).strip() for k in self.keep_float if str(k).strip()))
        if self.accuracy not in ("auto", True, False):
            raise CalibrationConfigError(f"accuracy must be 'auto', True or False, got {self.accuracy!r}")
        if self.sensitivity not in ("auto", True, False):
            raise CalibrationConfigError(f"sensitivity must be 'auto', True or False, got {self.sensitivity!r}")
        if self.eval_images < 1:
            raise CalibrationConfigError(f"--eval-images must be at least 1, got {self.eval_images}")
        if self.max_val_images is not None and self.max_val_images < 1:
            raise CalibrationConfigError(f"--max-val-images must be at least 1, got {self.max_val_images}")
        if self.quantized_bins < 16:
            raise CalibrationConfigError(f"quantized_bins must be at least 16, got {self.quantized_bins}")
        if self.histogram_bins is not None:
            self.histogram_bins = int(self.histogram_bins)
            if self.histogram_bins < self.quantized_bins:
                raise CalibrationConfigError(f"--histogram-bins must be at least {self.quantized_bins} (the quantized "
                                             f"bins), got {self.histogram_bins}")
        if self.cache_trt_version is not None:
            parse_trt_version_number(self.cache_trt_version)

    @property
    def resolved_keep_float(self) -> tuple[str, ...]:
        return DEFAULT_KEEP_FLOAT if self.keep_float is None else self.keep_float

    @property
    def resolved_histogram_bins(self) -> int:
        return self.histogram_bins if self.histogram_bins is not None else DEFAULT_HISTOGRAM_BINS[self.method]

    @property
    def max_opset(self) -> int:
        return TARGET_MAX_OPSET[self.target]

    @property
    def writes_cache(self) -> bool:
        return self.cache if self.cache is not None else CACHE_TRT_VERSION[self.target] is not None

    @property
    def cache_version(self) -> str:
        return self.cache_trt_version or CACHE_TRT_VERSION[self.target] or CACHE_TRT_VERSION["trt10"]

    def replace(self, **changes) -> "CalibrationConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["val"] = str(self.val) if self.val is not None else None
        data["keep_float"] = list(self.resolved_keep_float)
        data["histogram_bins"] = self.resolved_histogram_bins
        return data


def parse_keep_float(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``--keep-float score_fr,upscore8`` / ``ConvTranspose`` / ``none`` (quantize everything)."""
    if text is None:
        return None
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    if [i.lower() for i in items] in (["none"], ["-"]):
        return ()
    if any(i.lower() == "none" for i in items):
        raise CalibrationConfigError("--keep-float none cannot be combined with layer names")
    return tuple(dict.fromkeys(items))


def parse_trt_version_number(text: str) -> int:
    """``8.5.2`` -> 8502, ``10.3.0`` -> 100300: TensorRT's NV_TENSORRT_VERSION, as cache headers write it.

    TensorRT 8.x encodes major*1000 + minor*100 + patch, 10.x and later
    major*10000 + minor*100 + patch (the header of a 10.15.2 cache reads ``TRT-101502-...``).
    """
    parts = str(text).strip().split(".")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if not 2 <= len(numbers) <= 4 or min(numbers) < 0 or numbers[0] < 5:
        raise CalibrationConfigError(f"--cache-trt-version must look like 8.5.2 or 10.3.0, got {text!r}")
    major, minor = numbers[0], numbers[1]
    patch = numbers[2] if len(numbers) > 2 else 0
    if minor > 99 or patch > 99:
        raise CalibrationConfigError(f"--cache-trt-version {text!r}: minor and patch must be below 100")
    return major * (1000 if major < 10 else 10000) + minor * 100 + patch


def default_output_path(onnx_path: str | Path) -> Path:
    """``export/model.onnx`` -> ``export/model.int8.onnx`` (an ``.fp32`` in the stem is dropped)."""
    path = Path(onnx_path)
    stem = path.stem[:-5] if path.stem.endswith(".fp32") else path.stem
    return path.with_name(f"{stem}.int8.onnx")


def sidecar_paths(output: str | Path) -> tuple[Path, Path]:
    """(TensorRT calibration cache, ranges JSON) written next to the Q/DQ ONNX.

    ``model.int8.onnx`` -> ``model.calib.cache`` and ``model.int8.calib.json``.
    """
    output = Path(output)
    stem = output.stem[:-5] if output.stem.endswith(".int8") else output.stem
    return output.with_name(f"{stem}.calib.cache"), output.with_name(f"{output.stem}.calib.json")
