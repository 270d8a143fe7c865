"""fcn-edge calibrate: INT8 Q/DQ ONNX through ONNX Runtime's quantizer, with its accuracy cost measured.

Public API (nothing heavy is imported until used)::

    from fcn_edge.calib import calibrate_onnx, CalibrationConfig
    report = calibrate_onnx("export/fcn8s.onnx", images="calib/synth.txt", target="trt8",
                            config=CalibrationConfig(method="entropy", num_images=300, val="data/synth"))
    report.output        # export/fcn8s.int8.onnx (Q/DQ, TensorRT-ready)
    report.cache         # export/fcn8s.calib.cache (TensorRT implicit-calibrator cache) or None
    report.ranges_json   # export/fcn8s.int8.calib.json (every tensor's range, images, hashes, accuracy)
    report.accuracy      # AccuracyReport: fp32/int8 metrics, agreement, warnings, per-layer sensitivity

    from fcn_edge.calib import read_cache, cache_text     # TensorRT calibration cache I/O
    from fcn_edge.calib import check_qdq_graph            # TensorRT's Q/DQ rules on any ONNX

    from fcn_edge.calib import calibrate_within_budget    # INT8 within an accuracy budget
    search = calibrate_within_budget("export/fcn8s.onnx", "data/synth", val="data/synth", max_drop=0.5)
    search.chosen_step.keep_float  # the layers the search kept float; search.table() its steps

``calibrate_onnx(onnx_path, images, output=None, *, target=None, config=None, show_progress=True,
emit=None, scratch=None, **config_fields) -> CalibrationReport`` is also what
``fcn-edge build-engine --calib SOURCE`` calls.
"""

from __future__ import annotations

import importlib
from typing import Any

from fcn_edge.calib.config import (  # noqa: F401 - re-exported
    DEFAULT_KEEP_FLOAT, METHODS, TARGETS, CalibrationConfig, CalibrationConfigError, default_output_path,
    parse_keep_float, sidecar_paths,
)

_LAZY = {
    "calibrate_onnx": "fcn_edge.calib.calibrate",
    "CalibrationReport": "fcn_edge.calib.calibrate",
    "AccuracyReport": "fcn_edge.calib.accuracy",
    "LayerSensitivity": "fcn_edge.calib.accuracy",
    "read_cache": "fcn_edge.calib.trt_cache",
    "write_cache": "fcn_edge.calib.trt_cache",
    "cache_text": "fcn_edge.calib.trt_cache",
    "CalibrationCache": "fcn_edge.calib.trt_cache",
    "calibrate_within_budget": "fcn_edge.calib.budget",
    "Budget": "fcn_edge.calib.budget",
    "BudgetNotMet": "fcn_edge.calib.budget",
    "BudgetSearch": "fcn_edge.calib.budget",
    "check_qdq_graph": "fcn_edge.calib.qdq",
    "fix_qdq_graph": "fcn_edge.calib.qdq",
    "collect_images": "fcn_edge.calib.sources",
    "spread_indices": "fcn_edge.calib.sources",
}

__all__ = sorted(["CalibrationConfig", "CalibrationConfigError", "DEFAULT_KEEP_FLOAT", "METHODS", "TARGETS",
                  "default_output_path", "parse_keep_float", "sidecar_paths", *_LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fcn_edge.calib' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
