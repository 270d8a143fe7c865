"""The Q/DQ graph from the FP32 graph and its ranges, with ONNX Runtime's ``quantize_static``.

No quantizer is written here: ``quantize_static`` inserts the Q/DQ nodes, fed with the
ranges :mod:`.ranges` computed (through its calibration-cache argument, so the same
ranges can be reused for every variant the sensitivity analysis tries).  The options
are the TensorRT-friendly ones NVIDIA's ModelOpt passes to the same function:

* ``QuantFormat.QDQ``, ``QInt8`` activations and weights, ``per_channel=True`` with the
  channel axis per op (Conv 0, ConvTranspose 1: ``QDQOpTypePerChannelSupportToAxis``);
* ``ActivationSymmetric`` and ``WeightSymmetric`` (TensorRT takes zero point 0 only);
* ``QuantizeBias=False`` (TensorRT fuses float biases itself);
* ``AddQDQPairToWeight=True`` (float weights + Q + DQ, which every TensorRT since 8.0 folds);
* ``DedicatedQDQPair=False`` (one Q/DQ pair shared by a tensor's readers);
* ``OpTypesToExcludeOutputQuantization`` = every op type: Q/DQ only on the *inputs* of
  quantized ops, the placement TensorRT's fusions expect (Conv+ReLU then Q, not Q
  between them), which also keeps graph outputs unquantized;
* ``ForceQuantizeNoInputCheck=True`` so MaxPool is quantized even after a float op;
* ``op_types_to_quantize`` = :data:`fcn_edge.calib.config.QUANTIZED_OP_TYPES`;
* ``nodes_to_exclude`` = the in-graph pre/post-processing and the ``--keep-float`` layers.

Afterwards :func:`fcn_edge.calib.qdq.fix_qdq_graph` repairs what TensorRT would refuse
and :func:`fcn_edge.calib.qdq.check_qdq_graph` proves the rules hold.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from pathlib import Path
from typing import Sequence

from fcn_edge.calib.config import QUANTIZED_OP_TYPES
from fcn_edge.calib.ranges import TensorRanges, _quiet_stdout
from fcn_edge.lazy import require

log = logging.getLogger("fcn_edge.calib")


def quantizer_options(op_types_in_graph: Sequence[str]) -> dict:
    """``extra_options`` for ``quantize_static`` (see the module doc for why each is set)."""
    return {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "AddQDQPairToWeight": True,
        "DedicatedQDQPair": False,
        "ForceQuantizeNoInputCheck": True,
        "OpTypesToExcludeOutputQuantization": sorted(set(op_types_in_graph)),
        "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
    }


def quantize_with_ranges(model_path: Path, output_path: Path, ranges: TensorRanges, *,
                         nodes_to_exclude: Sequence[str], op_types_in_graph: Sequence[str],
                         scratch: Path | None = None, option_overrides: dict | None = None) -> Path:
    """Write the Q/DQ graph of ``model_path`` to ``output_path`` (ranges reused, no new calibration).

    ``option_overrides`` replaces entries of :func:`quantizer_options` (``--placement
    onnxruntime`` clears ``OpTypesToExcludeOutputQuantization``); the caller's checks
    still apply to the result.
    """
    options = quantizer_options(op_types_in_graph)
    options.update(option_overrides or {})
    quant = require("onnxruntime.quantization", purpose="to quantize ONNX models")
    if not _has_cache_argument(quant):
        return _quantize_with_qdq_quantizer(quant, model_path, output_path, ranges, nodes_to_exclude, options)
    with tempfile.TemporaryDirectory(prefix="fcn-edge-quant-", dir=scratch) as tmp:
        cache = ranges.save_ort_cache(Path(tmp) / "ranges.json")
        with _quiet_stdout():
            quant.quantize_static(
                str(model_path), str(output_path), calibration_data_reader=None,
                quant_format=quant.QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OP_TYPES),
                per_channel=True, reduce_range=False,
                activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8,
                nodes_to_exclude=list(nodes_to_exclude),
                calibrate_method=getattr(quant.CalibrationMethod, {"entropy": "Entropy", "max": "MinMax",
                                                                   "percentile": "Percentile"}[ranges.method]),
                extra_options=options,
                calibration_cache_path=str(cache),
            )
    return output_path


def _has_cache_argument(quant) -> bool:
    """``quantize_static(calibration_cache_path=...)`` exists from ONNX Runtime 1.26 (microsoft/onnxruntime#28221)."""
    try:
        return "calibration_cache_path" in inspect.signature(quant.quantize_static).parameters
    except (TypeError, ValueError):
        return False


def _quantize_with_qdq_quantizer(quant, model_path: Path, output_path: Path, ranges: TensorRanges,
                                 nodes_to_exclude: Sequence[str], options: dict) -> Path:
    """Older ONNX Runtime: the two calls ``quantize_static`` itself makes once it has ranges.

    ``QDQQuantizer(model, per_channel, reduce_range, weight_type, activation_type,
    tensors_range, nodes_to_quantize, nodes_to_exclude, op_types_to_quantize,
    extra_options)``, ``quantize_model()``, ``model.save_model_to_file()``.
    """
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    model = load_model_with_shape_infer(Path(model_path))
    with _quiet_stdout():
        quantizer = quant.QDQQuantizer(model, True, False, quant.QuantType.QInt8, quant.QuantType.QInt8,
                                       ranges.to_ort(), [], list(nodes_to_exclude), list(QUANTIZED_OP_TYPES), options)
        quantizer.quantize_model()
        quantizer.model.save_model_to_file(str(output_path), False)
    return output_path


def bypass_qdq(model, nodes: Sequence[str]):
    """A copy of a Q/DQ ``model`` where ``nodes`` read float tensors (see :func:`fcn_edge.calib.qdq.bypass_inputs`).

    "Keep this layer float" without re-running the quantizer: what the per-layer
    sensitivity analysis evaluates, one layer at a time.
    """
    onnx = require("onnx", purpose="to edit ONNX graphs")
    from fcn_edge.calib.qdq import bypass_inputs

    out = onnx.ModelProto()
    out.CopyFrom(model)
    bypass_inputs(out, nodes)
    return out
