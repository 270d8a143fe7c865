"""FP32 ONNX -> FP16 ONNX for TensorRT 11, whose strongly typed networks have no FP16 flag.

TensorRT 11 builds every network strongly typed: a tensor's type is what the ONNX
says, so an FP16 engine needs an FP16 ONNX.  The conversion itself is
onnxconverter-common's ``float16.convert_float_to_float16`` (what NVIDIA's and
Microsoft's tools use), called with ``keep_io_types=True`` and a *node block list*.
What this module adds is only what fcn-edge's graphs need around it:

* the block list: the in-graph *pre-processing* (everything up to the first
  Conv's input: uint8 frames -> normalised float) and *post-processing* (everything
  after the last Conv/ConvTranspose: crop, ArgMax -> labels, softmax confidence) stay
  exactly as exported, in float32; the network body between gets float16 weights and
  compute;
* refusals the library lacks (Q/DQ graphs, control flow, a body already in float16)
  and the library's own "already float16" check switched off, because an export with
  ``--confidence-dtype float16`` has a float16 *output* and the library would refuse it;
* the report (nodes, casts, weights clipped to +-65504 or raised to +-1e-7, which the
  library does silently but for a warning) and the precision fact in the metadata.

ONNX Runtime's CPU provider runs the result (tests compare its labels with the FP32
model's), but on x86 it has no float16 kernels for Conv, ConvTranspose, MaxPool, Relu,
Add, Mul, Softmax, ReduceMax or ArgMax: it inserts Casts and computes those in float32.
So a CPU run checks the graph and the weights' rounding, not float16 arithmetic.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_edge import __version__
from fcn_edge.engine.onnx_info import load_onnx
from fcn_edge.errors import ArtifactError
from fcn_edge.artifacts.onnx_metadata import parse_metadata_props
from fcn_edge.export.metadata import apply_metadata
from fcn_edge.fileio import atomic_path, sha256_file
from fcn_edge.lazy import require

log = logging.getLogger(__name__)

FLOAT = 1
FLOAT16 = 10
FP16_MAX = 65504.0   # largest finite float16: weights beyond are clipped to it
FP16_MIN = 1e-7      # smaller non-zero weights are raised to +-this (the library's default)
CONV_OPS = ("Conv", "ConvTranspose")
PURPOSE = "to convert an ONNX model to FP16"


@dataclass(frozen=True)
class Fp16Report:
    """What the conversion did, for the log and the ONNX's metadata."""

    fp16_nodes: int
    float32_nodes: int          # pre/post-processing kept as exported (the node block list)
    converted_initializers: int
    casts_inserted: int
    clipped_values: int         # |w| > 65504 clipped to +-65504
    raised_to_min: int          # non-zero |w| < 1e-7 raised to +-1e-7

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def convert_to_fp16(model: Any) -> tuple[Any, Fp16Report]:
    """Return an FP16 copy of the FP32 ``model`` (a ModelProto) and what was done.

    Graph inputs and outputs keep their types; pre/post-processing stays float32.
    """
    onnx = require("onnx", purpose=PURPOSE)
    float16 = require("onnxconverter_common.float16", purpose=PURPOSE)
    source = onnx.ModelProto()
    source.CopyFrom(model)
    _refuse_unsupported(onnx, source)
    _name_unnamed_nodes(source)
    blocked = block_list(source)
    before = {init.name: init for init in source.graph.initializer}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns per clipped tensor; the report counts them
        converted = float16.convert_float_to_float16(
            source, keep_io_types=True, node_block_list=sorted(blocked), op_block_list=float16.DEFAULT_OP_BLOCK_LIST,
            min_positive_val=FP16_MIN, max_finite_val=FP16_MAX, check_fp16_ready=False)
    converted = _checked(onnx, converted)
    report = _report(onnx, source, converted, before, blocked)
    _stamp_metadata(converted, report)
    return converted, report


def write_fp16_onnx(source: "str | Path", destination: "str | Path") -> Fp16Report:
    """Convert the ONNX at ``source`` and write it atomically to ``destination``."""
    onnx = require("onnx", purpose=PURPOSE)
    converted, report = convert_to_fp16(load_onnx(source))
    _stamp_metadata(converted, report, source_sha256=sha256_file(source))
    with atomic_path(destination) as tmp:
        onnx.save(converted, str(tmp))
    if report.clipped_values:
        log.warning("FP16 conversion clipped %d weight values beyond +-65504", report.clipped_values)
    return report


def block_list(model: Any) -> set[str]:
    """Names of the nodes that stay float32: the pre-processing before the first Conv, the post-processing after the last."""
    nodes = list(model.graph.node)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output}
    convs = [i for i, n in enumerate(nodes) if n.op_type in CONV_OPS]
    if not convs:
        raise ArtifactError("the model has no Conv/ConvTranspose layers: nothing for an FP16 conversion to do")
    kept = _ancestors(nodes, producer, nodes[convs[0]].input[0]) | _descendants(nodes, nodes[convs[-1]].output[0])
    return {nodes[i].name for i in kept}


def _refuse_unsupported(onnx: Any, model: Any) -> None:
    """Graphs the conversion is not meant for: control flow, Q/DQ, a body already in float16."""
    for node in model.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ArtifactError(f"node {node.name or node.op_type} has a subgraph (control flow); the FP16 conversion "
                                "handles plain feed-forward graphs such as fcn-edge's exports")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            raise ArtifactError("the model is already quantized (Q/DQ); convert the FP32 export to FP16 instead")
    inits = {init.name: init.data_type for init in model.graph.initializer}
    conv_weights = [inits.get(n.input[1]) for n in model.graph.node if n.op_type in CONV_OPS and len(n.input) > 1]
    if FLOAT16 in conv_weights:
        raise ArtifactError("the model's convolution weights are already float16; build it as it is")


def _name_unnamed_nodes(model: Any) -> None:
    """The block list names nodes; an ONNX from another tool may leave names empty."""
    taken = {n.name for n in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = next(f"fp16_node/{index}/{k}" for k in range(len(taken) + 1) if f"fp16_node/{index}/{k}" not in taken)
            taken.add(node.name)


def _checked(onnx: Any, model: Any) -> Any:
    """The converted graph passes onnx.checker and strict shape inference, or the conversion is reported broken."""
    model.graph.ClearField("value_info")  # the library's annotations; inference re-derives them
    try:
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several kinds
        raise ArtifactError(f"the FP16 conversion produced an invalid graph ({type(exc).__name__}: {str(exc)[:300]}); "
                            "please report it with the ONNX file") from exc


def _report(onnx: Any, source: Any, converted: Any, before: dict[str, Any], blocked: set[str]) -> Fp16Report:
    """Count what the library did: initializers it halved (and the values it clipped or raised), casts it added."""
    np = require("numpy")
    halved = [before[i.name] for i in converted.graph.initializer
              if i.data_type == FLOAT16 and i.name in before and before[i.name].data_type == FLOAT]
    clipped = raised = 0
    for init in halved:
        array = np.abs(onnx.numpy_helper.to_array(init))
        finite = np.isfinite(array)
        clipped += int(np.count_nonzero(finite & (array > FP16_MAX)))
        raised += int(np.count_nonzero((array > 0) & (array < FP16_MIN)))
    casts = sum(n.op_type == "Cast" for n in converted.graph.node) - sum(n.op_type == "Cast" for n in source.graph.node)
    return Fp16Report(fp16_nodes=len(source.graph.node) - len(blocked), float32_nodes=len(blocked),
                      converted_initializers=len(halved), casts_inserted=casts, clipped_values=clipped, raised_to_min=raised)


def _ancestors(nodes: list[Any], producer: dict[str, int], tensor: str) -> set[int]:
    found: set[int] = set()
    queue = deque([tensor])
    while queue:
        name = queue.popleft()
        index = producer.get(name)
        if index is None or index in found:
            continue
        found.add(index)
        queue.extend(n for n in nodes[index].input if n)
    return found


def _descendants(nodes: list[Any], tensor: str) -> set[int]:
    consumers: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers[name].append(index)
    found: set[int] = set()
    queue = deque([tensor])
    while queue:
        name = queue.popleft()
        for index in consumers.get(name, []):
            if index not in found:
                found.add(index)
                queue.extend(nodes[index].output)
    return found


PLAIN_CONVERSION_KEY = "fcn_edge.fp16_conversion"


def _stamp_metadata(model: Any, report: Fp16Report, source_sha256: str | None = None) -> None:
    """Record the conversion: precision ``fp16`` in the export facts, the report beside it.

    An fcn-edge ONNX gets its facts rewritten through the exporter's own
    :func:`~fcn_edge.export.apply_metadata` (so the plain ``fcn_edge.precision`` key
    agrees); an ONNX from another tool gets only a plain key, never half an fcn-edge
    description that readers would refuse as incomplete.
    """
    onnxconverter_common = require("onnxconverter_common", purpose=PURPOSE)
    conversion: dict[str, Any] = {"by": f"fcn-edge {__version__} with onnxconverter-common {onnxconverter_common.__version__}",
                                  "float32_kept": "pre/post-processing and graph I/O", **report.to_dict()}
    if source_sha256:
        conversion["source_sha256"] = source_sha256
    info, facts = parse_metadata_props({p.key: p.value for p in model.metadata_props}, "the ONNX being converted")
    if info is None or facts is None:
        entry = next((p for p in model.metadata_props if p.key == PLAIN_CONVERSION_KEY), None) or model.metadata_props.add()
        entry.key, entry.value = PLAIN_CONVERSION_KEY, json.dumps(conversion, sort_keys=True)
        return
    apply_metadata(model, info, facts.replace(precision="fp16", extra={**facts.extra, "fp16_conversion": conversion}))
