"""``--quantizer modelopt``: NVIDIA ModelOpt's ONNX INT8 quantizer instead of calling ONNX Runtime directly.

ModelOpt (``pip install nvidia-modelopt[onnx]``) wraps the same ``quantize_static`` with
its own node-selection heuristics.  It is used only when installed *and* asked for; its
output goes through the same checks and fixes (:mod:`fcn_edge.calib.qdq`), and the
activation ranges recorded in the JSON and the TensorRT cache are read back from the
Q/DQ scales it chose (``amax = scale * 127``).

Written against ModelOpt's documented entry point
``modelopt.onnx.quantization.quantize(onnx_path, quantize_mode, calibration_data,
calibration_method, calibration_eps, op_types_to_quantize, nodes_to_exclude,
output_path, high_precision_dtype, ...)``; not run in this repository's CI (ModelOpt
is not installed there), see the README of the calibrate stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import require

log = logging.getLogger("fcn_edge.calib")

MODELOPT_METHODS = {"entropy": "entropy", "max": "max"}


def require_modelopt():
    """The ModelOpt ONNX quantization module, or one sentence saying how to install it."""
    return require("modelopt.onnx.quantization", purpose="for --quantizer modelopt")


def quantize_with_modelopt(model_path: Path, output_path: Path, *, input_name: str, batches: Sequence[np.ndarray],
                           method: str, nodes_to_exclude: Sequence[str], op_types_to_quantize: Sequence[str],
                           opset: int) -> Path:
    if method not in MODELOPT_METHODS:
        raise FcnEdgeError(f"ModelOpt calibrates with entropy or max, not {method}; use --quantizer ort for percentile")
    modelopt = require_modelopt()
    data = np.concatenate(list(batches), axis=0)
    modelopt.quantize(
        str(model_path),
        quantize_mode="int8",
        calibration_data={input_name: data},
        calibration_method=MODELOPT_METHODS[method],
        calibration_eps=["cpu"],
        op_types_to_quantize=list(op_types_to_quantize),
        nodes_to_exclude=[_exact(n) for n in nodes_to_exclude],
        output_path=str(output_path),
        high_precision_dtype="fp32",   # keep float parts FP32: the ORT CPU comparison and TensorRT 8 both want it
        opset=opset,
    )
    if not output_path.is_file():
        raise FcnEdgeError(f"ModelOpt wrote no model to {output_path}; rerun with -vv for its log")
    return output_path


def _exact(name: str) -> str:
    """ModelOpt reads nodes_to_exclude as regular expressions: match the node name exactly."""
    import re

    return f"^{re.escape(name)}$"
