"""FP32 ONNX -> FP16 ONNX for TensorRT 11, whose strongly typed networks have no FP16 flag.

TensorRT 11 builds every network strongly typed: a tensor's type is what the ONNX
says, so an FP16 engine needs an FP16 ONNX.  NVIDIA points to ModelOpt AutoCast for
that; fcn-edge does the same job with the ``onnx`` package alone, for its own graphs:

* the *network body* (from the first Conv's input to the last Conv/ConvTranspose's
  output) gets float16 weights, constants and compute;
* the in-graph *pre-processing* (uint8 frames -> normalised float) and
  *post-processing* (crop, ArgMax -> labels, softmax confidence) stay exactly as
  exported, in float32, as do the graph's inputs and outputs;
* Cast nodes are inserted where float32 and float16 meet.

Weights beyond float16's range (|w| > 65504) are clipped and counted; the report says
how many.  The result is checked with ``onnx.checker`` and is runnable by ONNX Runtime
(tests compare its labels with the FP32 model's on CPU).
"""

from __future__ import annotations

import json
import logging
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
FP16_MAX = 65504.0
CONV_OPS = ("Conv", "ConvTranspose")
# (op_type, input index) whose tensor must stay float32 whatever T is (ONNX schemas).
KEEP_FLOAT32_INPUTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1), ("QuantizeLinear", 1), ("DequantizeLinear", 1)}


@dataclass(frozen=True)
class Fp16Report:
    """What the conversion did, for the log and the ONNX's metadata."""

    fp16_nodes: int
    float32_nodes: int          # pre/post-processing kept as exported
    converted_initializers: int
    casts_inserted: int
    clipped_values: int         # |w| > 65504 clipped to +-65504
    flushed_to_zero: int        # non-zero weights too small for float16

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def convert_to_fp16(model: Any, *, keep_float32_ends: bool = True) -> tuple[Any, Fp16Report]:
    """Return an FP16 copy of the FP32 ``model`` (a ModelProto) and what was done.

    ``keep_float32_ends=False`` converts the pre/post-processing too (graph I/O still
    keeps its types).
    """
    onnx = require("onnx", purpose="to convert an ONNX model to FP16")
    numpy_helper = onnx.numpy_helper
    helper = onnx.helper
    np = require("numpy")

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise ArtifactError(f"node {node.name or node.op_type} has a subgraph (control flow); the FP16 conversion "
                                    "handles plain feed-forward graphs such as fcn-edge's exports")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            raise ArtifactError("the model is already quantized (Q/DQ); convert the FP32 export to FP16 instead")

    dtypes = _infer_dtypes(onnx, model)
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.output:
            producer[name] = index
    conv_indices = [i for i, n in enumerate(nodes) if n.op_type in CONV_OPS]
    if not conv_indices:
        raise ArtifactError("the model has no Conv/ConvTranspose layers: nothing for an FP16 conversion to do")

    pre: set[int] = set()
    post: set[int] = set()
    if keep_float32_ends:
        pre = _ancestors(nodes, producer, nodes[conv_indices[0]].input[0])
        post = _descendants(nodes, nodes[conv_indices[-1]].output[0])
    body = set(range(len(nodes))) - pre - post

    initializers = {init.name: init for init in graph.initializer}
    graph_inputs = {vi.name for vi in graph.input}
    graph_outputs = {vi.name for vi in graph.output}

    # 1. Graph outputs produced by the body keep their name and type: the body writes
    #    "<name>__fp16" and a Cast produces the original name.
    renames: dict[str, str] = {}
    output_casts_after: dict[int, list[Any]] = defaultdict(list)
    for index in body:
        for slot, name in enumerate(nodes[index].output):
            if name in graph_outputs and dtypes.get(name) == FLOAT:
                renames[name] = f"{name}__fp16"
                dtypes[renames[name]] = FLOAT
                nodes[index].output[slot] = renames[name]
                output_casts_after[index].append(
                    helper.make_node("Cast", [renames[name]], [name], to=FLOAT, name=f"fp16_cast/{name}"))
    for index in body:
        for slot, name in enumerate(nodes[index].input):
            if name in renames:
                nodes[index].input[slot] = renames[name]

    # 2. Body nodes whose own float32 output becomes float16.
    clipped = flushed = converted_inits = 0
    new_dtype: dict[str, int] = {}
    for index in sorted(body):
        node = nodes[index]
        if node.op_type == "Cast":
            to = next((a for a in node.attribute if a.name == "to"), None)
            if to is not None and to.i == FLOAT:
                to.i = FLOAT16
        elif node.op_type in ("Constant", "ConstantOfShape"):
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == FLOAT:
                    array, c, f = _to_half(np, numpy_helper.to_array(attr.t))
                    clipped, flushed = clipped + c, flushed + f
                    attr.t.CopyFrom(numpy_helper.from_array(array, attr.t.name))
                elif attr.name in ("value_float", "value_floats"):
                    values = np.asarray([attr.f] if attr.name == "value_float" else list(attr.floats), dtype=np.float32)
                    array = values.reshape(()) if attr.name == "value_float" else values
                    node.ClearField("attribute")
                    node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(_to_half(np, array)[0])))
                    break
        for name in node.output:
            if dtypes.get(name) == FLOAT:
                new_dtype[name] = FLOAT16

    # 3. Float32 initializers read by the body become float16 (a copy when shared).
    consumers_of: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers_of[name].append(index)
    half_name: dict[str, str] = {}
    for index in sorted(body):
        node = nodes[index]
        for slot, name in enumerate(node.input):
            init = initializers.get(name)
            if init is None or init.data_type != FLOAT or (node.op_type, slot) in KEEP_FLOAT32_INPUTS:
                continue
            if name not in half_name:
                array, c, f = _to_half(np, numpy_helper.to_array(init))
                clipped, flushed = clipped + c, flushed + f
                only_body = all(i in body and (nodes[i].op_type, list(nodes[i].input).index(name)) not in KEEP_FLOAT32_INPUTS
                                for i in consumers_of[name]) and name not in graph_inputs
                target = name if only_body else f"{name}__fp16"
                tensor = numpy_helper.from_array(array, target)
                if only_body:
                    init.CopyFrom(tensor)
                else:
                    graph.initializer.append(tensor)
                half_name[name] = target
                converted_inits += 1
            node.input[slot] = half_name[name]

    # 4. Casts where float32 and float16 meet (one per tensor and direction).
    def actual(name: str) -> int | None:
        if name in half_name.values():
            return FLOAT16
        return new_dtype.get(name, dtypes.get(name))

    cast_cache: dict[tuple[str, int], str] = {}
    new_nodes_before: dict[int, list[Any]] = defaultdict(list)
    casts = 0
    for index, node in enumerate(nodes):
        in_body = index in body
        for slot, name in enumerate(node.input):
            if not name:
                continue
            original = dtypes.get(name)
            have = actual(name)
            if original not in (FLOAT, FLOAT16) and have not in (FLOAT, FLOAT16):
                continue
            keep32 = (node.op_type, slot) in KEEP_FLOAT32_INPUTS
            want = FLOAT16 if (in_body and original == FLOAT and not keep32) else original
            if want is None or have is None or want == have:
                continue
            key = (name, want)
            if key not in cast_cache:
                cast_name = f"{name}__to_{'fp16' if want == FLOAT16 else 'fp32'}"
                cast_cache[key] = cast_name
                new_nodes_before[index].append(helper.make_node("Cast", [name], [cast_name], to=want,
                                                                name=f"fp16_cast/{cast_name}"))
                casts += 1
            node.input[slot] = cast_cache[key]
    ordered = []
    for index, node in enumerate(nodes):
        ordered.extend(new_nodes_before.get(index, []))
        ordered.append(node)
        ordered.extend(output_casts_after.get(index, []))
        casts += len(output_casts_after.get(index, []))
    graph.ClearField("node")
    graph.node.extend(ordered)

    # 5. Stale intermediate type annotations go; the checker and inference re-derive them.
    graph.ClearField("value_info")
    try:
        onnx.checker.check_model(out)
        out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several kinds
        raise ArtifactError(f"the FP16 conversion produced an invalid graph ({type(exc).__name__}: {str(exc)[:300]}); "
                            "please report it with the ONNX file") from exc
    report = Fp16Report(fp16_nodes=len(body), float32_nodes=len(pre) + len(post), converted_initializers=converted_inits,
                        casts_inserted=casts, clipped_values=clipped, flushed_to_zero=flushed)
    _stamp_metadata(out, report)
    return out, report


def write_fp16_onnx(source: "str | Path", destination: "str | Path", *, keep_float32_ends: bool = True) -> Fp16Report:
    """Convert the ONNX at ``source`` and write it atomically to ``destination``."""
    onnx = require("onnx", purpose="to convert an ONNX model to FP16")
    model = load_onnx(source)
    converted, report = convert_to_fp16(model, keep_float32_ends=keep_float32_ends)
    _stamp_metadata(converted, report, source_sha256=sha256_file(source))
    with atomic_path(destination) as tmp:
        onnx.save(converted, str(tmp))
    if report.clipped_values:
        log.warning("FP16 conversion clipped %d weight values beyond +-65504", report.clipped_values)
    return report


def _to_half(np: Any, array: Any) -> tuple[Any, int, int]:
    array = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    clipped = int(np.count_nonzero(finite & (np.abs(array) > FP16_MAX)))
    half = np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)  # also maps +-inf to +-65504; NaN stays NaN
    flushed = int(np.count_nonzero((array != 0) & finite & (half == 0)))
    return half.astype(np.float16), clipped, flushed


def _infer_dtypes(onnx: Any, model: Any) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001
        raise ArtifactError(f"ONNX type inference failed on the model ({str(exc)[:200]}); the FP16 conversion needs known types") from exc
    dtypes: dict[str, int] = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            dtypes[vi.name] = vi.type.tensor_type.elem_type
    for init in inferred.graph.initializer:
        dtypes[init.name] = init.data_type
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    dtypes[node.output[0]] = attr.t.data_type
                elif attr.name in ("value_float", "value_floats"):
                    dtypes[node.output[0]] = FLOAT
    return dtypes


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
    conversion: dict[str, Any] = {"by": f"fcn-edge {__version__}", "float32_kept": "pre/post-processing and graph I/O",
                                  **report.to_dict()}
    if source_sha256:
        conversion["source_sha256"] = source_sha256
    info, facts = parse_metadata_props({p.key: p.value for p in model.metadata_props}, "the ONNX being converted")
    if info is None or facts is None:
        entry = next((p for p in model.metadata_props if p.key == PLAIN_CONVERSION_KEY), None) or model.metadata_props.add()
        entry.key, entry.value = PLAIN_CONVERSION_KEY, json.dumps(conversion, sort_keys=True)
        return
    apply_metadata(model, info, facts.replace(precision="fp16", extra={**facts.extra, "fp16_conversion": conversion}))
