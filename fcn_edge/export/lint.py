"""A TensorRT lint for ONNX files that needs no TensorRT.

``fcn-edge export`` runs it on what it writes; ``fcn-edge export --lint-only FILE.onnx``
runs it on any ONNX.  For each TensorRT family (:data:`~fcn_edge.export.trt_ops.TARGETS`)
it checks what the ONNX-TensorRT parser documents:

* every operator is in the family's support table (unsupported/unknown ops are errors,
  operators only recent releases parse are warnings) and custom domains need plugins;
* the opset is one the family parses (8.5/8.6: <= 17);
* element types: UINT8 only as a network input cast to FP32/FP16 or a network output
  cast from them; INT64 cast down to INT32 on 8.x; DOUBLE cast down; the op's input
  type is in its supported-types column;
* ArgMax indices used by anything but a Cast (their type is INT32 on 8.x, INT64 on 10.x);
* constant-only inputs (TopK K, Slice/Squeeze/Unsqueeze axes), MaxPool indices, Q/DQ
  zero points, Resize modes, Conv weights that are not initialisers;
* training-only nodes (Dropout, random generators) and run-time shape arithmetic in a
  graph whose inputs are static;
* dynamic input dimensions (they need an optimisation profile; DLA takes static only).

Errors are things the parser refuses; warnings are doubtful things with the node named.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from fcn_edge.errors import ArtifactError
from fcn_edge.export.trt_ops import DEFAULT_TARGETS, ONNX_TO_TRT_TYPE, TARGETS, TargetSpec
from fcn_edge.lazy import require

_SMALL_INITIALIZER = 4096  # elements; larger ones are replaced by typed inputs for shape inference
_RESIZE_COORD_MODES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_TRAINING_ONLY = {"Dropout", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                  "Bernoulli", "Multinomial"}
_TYPED_BY_OUTPUT = {"Constant", "ConstantOfShape", "RandomNormal", "RandomUniform", "EyeLike", "Range"}
_SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "Range", "NonZero"}


@dataclass
class LintIssue:
    severity: str      # "error" | "warning" | "info"
    code: str          # short stable id, e.g. "unsupported-op"
    message: str
    node: str = ""     # node (or tensor) name
    op_type: str = ""

    def format(self, target: str = "") -> str:
        where = f" node '{self.node}' ({self.op_type})" if self.node and self.op_type else \
            (f" '{self.node}'" if self.node else "")
        prefix = f"{target} " if target else ""
        return f"{prefix}{self.severity} [{self.code}]{where}: {self.message}"


@dataclass
class LintReport:
    target: str
    title: str
    opset: int | None
    issues: list[LintIssue] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        verdict = "OK" if self.ok else "FAILS"
        return (f"{self.title}: {verdict} ({len(self.errors)} errors, {len(self.warnings)} warnings, "
                f"{sum(self.op_counts.values())} nodes, opset {self.opset})")

    def lines(self, include_info: bool = False) -> list[str]:
        return [i.format(self.target) for i in self.issues if include_info or i.severity != "info"]

    def to_dict(self) -> dict:
        return {"target": self.target, "ok": self.ok, "opset": self.opset,
                "errors": [i.format() for i in self.errors], "warnings": [i.format() for i in self.warnings]}


def lint_onnx(model, targets: Iterable[str] = DEFAULT_TARGETS) -> list[LintReport]:
    """Lint ``model`` (an ``onnx.ModelProto`` or a path) for each TensorRT family in ``targets``."""
    onnx = require("onnx", purpose="to lint ONNX models")
    if isinstance(model, (str, os.PathLike)):
        model = _load(model)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ArtifactError(f"unknown lint target {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    graph_view = _GraphView(model, onnx)
    return [_lint_target(graph_view, TARGETS[t]) for t in targets]


def _load(path):
    onnx = require("onnx", purpose="to lint ONNX models")
    from fcn_edge.artifacts.onnx_metadata import read_onnx_header

    read_onnx_header(path)  # one-sentence errors for missing / non-ONNX files
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError, OSError, ValueError...
        raise ArtifactError(f"{path} cannot be loaded as ONNX ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None


class _GraphView:
    """Types and uses of every tensor of the main graph, computed once for all targets."""

    def __init__(self, model, onnx) -> None:
        self.onnx = onnx
        self.model = model
        graph = model.graph
        self.opsets = {e.domain or "ai.onnx": e.version for e in model.opset_import}
        self.opset = self.opsets.get("ai.onnx")
        self.initializers = {i.name: i for i in graph.initializer}
        self.graph_inputs = [i for i in graph.input if i.name not in self.initializers]
        self.input_names = {i.name for i in self.graph_inputs}
        self.output_names = {o.name for o in graph.output}
        self.nodes = list(graph.node)
        self.all_nodes = list(_walk_nodes(graph))
        self.producer = {out: n for n in self.nodes for out in n.output if out}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for name in n.input:
                if name:
                    self.consumers.setdefault(name, []).append(n)
        self.constants = {n.output[0]: n for n in self.nodes if n.op_type == "Constant"}
        self.types = self._infer_types()

    def _infer_types(self) -> dict[str, int]:
        onnx = self.onnx
        graph = self.model.graph
        small = [i for i in graph.initializer if _numel(i) <= _SMALL_INITIALIZER]
        big_inputs = [onnx.helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
                      for i in graph.initializer if _numel(i) > _SMALL_INITIALIZER]
        skeleton_graph = onnx.helper.make_graph(list(graph.node), graph.name or "g", list(self.graph_inputs) + big_inputs,
                                                list(graph.output), initializer=small, value_info=list(graph.value_info))
        skeleton = onnx.helper.make_model(skeleton_graph, opset_imports=list(self.model.opset_import))
        skeleton.ir_version = self.model.ir_version
        try:
            skeleton = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False)
        except Exception:  # noqa: BLE001 - inference is best effort; declared types still count
            pass
        types: dict[str, int] = {}
        for vi in list(skeleton.graph.input) + list(skeleton.graph.value_info) + list(skeleton.graph.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                types[vi.name] = vi.type.tensor_type.elem_type
        for init in graph.initializer:
            types[init.name] = init.data_type
        for name, node in self.constants.items():
            for attr in node.attribute:
                if attr.name == "value":
                    types[name] = attr.t.data_type
        return types

    def type_name(self, tensor: str) -> str | None:
        code = self.types.get(tensor)
        return ONNX_TO_TRT_TYPE.get(code, f"type{code}") if code else None

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.initializers or tensor in self.constants


def _numel(init) -> int:
    n = 1
    for d in init.dims:
        n *= d
    return n


def _walk_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == 5:  # GRAPH
                yield from _walk_nodes(attr.g)
            elif attr.type == 10:  # GRAPHS
                for sub in attr.graphs:
                    yield from _walk_nodes(sub)


def _name(node, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def _lint_target(view: _GraphView, spec: TargetSpec) -> LintReport:
    onnx = view.onnx
    report = LintReport(spec.key, spec.title, view.opset)
    add = report.issues.append
    report.op_counts = dict(sorted(Counter(n.op_type for n in view.all_nodes).items()))

    # -------------------------------------------------------------- opset and domains
    if view.opset is None:
        add(LintIssue("error", "opset", "the model imports no default-domain (ai.onnx) opset"))
    elif view.opset > spec.max_opset:
        add(LintIssue("error", "opset", f"opset {view.opset} is above what {spec.title} parses (<= {spec.max_opset}); "
                      f"re-export with --opset {spec.max_opset if spec.key != 'trt8' else 17}"))
    elif view.opset > spec.safe_opset:
        add(LintIssue("warning", "opset", f"opset {view.opset} needs a late {spec.title} release (early ones parse "
                      f"<= {spec.safe_opset})"))
    elif view.opset < 9:
        add(LintIssue("error", "opset", f"opset {view.opset} is below 9, the oldest TensorRT parses"))

    # -------------------------------------------------------------- operators
    for index, node in enumerate(view.all_nodes):
        name = _name(node, index)
        if node.domain not in ("", "ai.onnx"):
            add(LintIssue("error", "custom-op", f"operator from domain '{node.domain}' needs a TensorRT plugin "
                          "registered under that name", name, node.op_type))
            continue
        if node.op_type in spec.unsupported:
            add(LintIssue("error", "unsupported-op", f"{spec.title} does not support {node.op_type}", name, node.op_type))
            continue
        if node.op_type not in spec.supported:
            add(LintIssue("error", "unknown-op", f"{node.op_type} is not in the {spec.title} operator table", name,
                          node.op_type))
            continue
        if node.op_type in spec.late_ops:
            add(LintIssue("warning", "late-op", f"{node.op_type} needs TensorRT {spec.late_ops[node.op_type]} or newer",
                          name, node.op_type))
        if node.op_type in _TRAINING_ONLY:
            add(LintIssue("warning", "training-op", f"{node.op_type} is a training-time/random node; an inference "
                          "export should not contain it", name, node.op_type))

    # the rest needs the main graph's tensor types and uses
    for index, node in enumerate(view.nodes):
        if node.domain not in ("", "ai.onnx"):
            continue
        _check_node(view, spec, node, _name(node, index), add)

    # -------------------------------------------------------------- I/O
    static_inputs = True
    for vi in view.graph_inputs:
        dtype = view.type_name(vi.name)
        shape = vi.type.tensor_type.shape if vi.type.HasField("tensor_type") else None
        if shape is None or not vi.type.tensor_type.HasField("shape"):
            add(LintIssue("warning", "unknown-rank", "input has no shape; TensorRT needs the rank", vi.name))
            static_inputs = False
        else:
            for axis, dim in enumerate(shape.dim):
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    continue
                static_inputs = False
                label = dim.dim_param or "?"
                add(LintIssue("info", "dynamic-dim", f"input axis {axis} ('{label}') is dynamic: the engine needs an "
                              "optimisation profile (min/opt/max); DLA takes static shapes only", vi.name))
        if dtype == "UINT8":
            bad = [c for c in view.consumers.get(vi.name, []) if not _is_float_cast(c)]
            for c in bad:
                add(LintIssue("error", "uint8-io", "a UINT8 input may only feed a Cast to FP32/FP16", c.name, c.op_type))
        elif dtype == "INT64" and not spec.int64_native:
            add(LintIssue("warning", "int64-io", "INT64 input: TensorRT 8.x casts it down to INT32", vi.name))
        elif dtype and dtype not in spec.tensor_types and dtype != "UINT8":
            add(LintIssue("error", "io-dtype", f"{dtype} input is not a TensorRT type", vi.name))
    for vi in view.model.graph.output:
        dtype = view.type_name(vi.name)
        if dtype == "UINT8":
            producer = view.producer.get(vi.name)
            if producer is None or producer.op_type != "Cast" or view.type_name(producer.input[0]) not in ("FP32", "FP16"):
                add(LintIssue("error", "uint8-io", "a UINT8 output must come from a Cast of an FP32/FP16 tensor",
                              vi.name))
        elif dtype == "INT64" and not spec.int64_native:
            add(LintIssue("warning", "int64-io", "INT64 output becomes INT32 on TensorRT 8.x: read the engine's "
                          "real dtype", vi.name))
        elif dtype and dtype not in spec.tensor_types and dtype != "UINT8":
            add(LintIssue("error", "io-dtype", f"{dtype} output is not a TensorRT type", vi.name))

    if static_inputs:
        for index, node in enumerate(view.nodes):
            if node.op_type in _SHAPE_OPS:
                add(LintIssue("warning", "runtime-shape", "the inputs are static but the graph computes shapes at run "
                              "time; constant-fold it (static exports should have none)", _name(node, index), node.op_type))

    if not spec.int64_native:
        wide = [name for name, init in view.initializers.items() if init.data_type == onnx.TensorProto.INT64]
        if wide:
            shown = ", ".join(wide[:4]) + (", ..." if len(wide) > 4 else "")
            add(LintIssue("info", "int64-initializer", f"{len(wide)} INT64 initialisers ({shown}) are cast down to "
                          "INT32 by the parser (harmless when values fit)"))
    return report


def _is_float_cast(node) -> bool:
    if node.op_type != "Cast":
        return False
    to = next((a.i for a in node.attribute if a.name == "to"), None)
    return to in (1, 10)  # FLOAT, FLOAT16


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            value = a.s if a.type == 3 else (a.i if a.type == 2 else (a.f if a.type == 1 else None))
            return value.decode() if isinstance(value, bytes) else value
    return default


def _check_node(view: _GraphView, spec: TargetSpec, node, name: str, add) -> None:
    op = node.op_type
    supported = spec.supported.get(op)
    # element types flowing through the node
    tensors = [t for t in list(node.input) + list(node.output) if t]
    for tensor in tensors:
        dtype = view.type_name(tensor)
        if dtype == "UINT8":
            is_in = tensor in node.input
            graph_io = tensor in view.input_names if is_in else tensor in view.output_names
            ok_cast = op == "Cast" and graph_io and (
                _is_float_cast(node) if is_in else view.type_name(node.input[0]) in ("FP32", "FP16"))
            if not ok_cast:
                hint = " (cast ArgMax indices to FLOAT first, then to UINT8)" if op == "Cast" and \
                    view.producer.get(node.input[0]) is not None and view.producer[node.input[0]].op_type == "ArgMax" else ""
                add(LintIssue("error", "uint8-internal", "UINT8 is allowed only as a network input cast to FP32/FP16 "
                              f"or a network output cast from them{hint}", name, op))
                break
        elif dtype == "DOUBLE":
            add(LintIssue("warning", "double", f"DOUBLE tensor '{tensor}' is cast down to FP32", name, op))
            break
        elif dtype and dtype not in spec.tensor_types and dtype != "INT64":
            add(LintIssue("error", "dtype", f"tensor '{tensor}' is {dtype}, which TensorRT does not have", name, op))
            break
    # the "Supported Types" column: of the data input, or of the output for generators
    typed = node.output[0] if op in _TYPED_BY_OUTPUT else (node.input[0] if node.input else "")
    if supported and typed and op not in ("Cast", "CastLike", "Shape", "Size"):
        dtype = view.type_name(typed)
        if dtype == "INT64" and not spec.int64_native:
            dtype = "INT32"  # the 8.x parser casts INT64 down
        if dtype and dtype not in supported and dtype != "UINT8":
            add(LintIssue("warning", "op-dtype", f"{op} on {dtype}; the documented types are "
                          f"{', '.join(sorted(supported))}", name, op))
    if op == "Cast":
        to = ONNX_TO_TRT_TYPE.get(_attr(node, "to", 0))
        if supported and to and to not in supported and to != "INT64":
            add(LintIssue("error", "op-dtype", f"Cast to {to} is not supported", name, op))
    # ArgMax's index type differs between 8.x (INT32) and 10.x (INT64)
    if op in ("ArgMax", "ArgMin"):
        for c in view.consumers.get(node.output[0], []):
            if c.op_type != "Cast":
                add(LintIssue("warning", "argmax-index", "ArgMax indices are INT32 on TensorRT 8.x and INT64 on 10.x; "
                              f"{c.op_type} uses them directly (cast them first)", name, op))
        if node.output[0] in view.output_names:
            add(LintIssue("warning", "argmax-index", "ArgMax indices as a network output are INT32 on 8.x and INT64 "
                          "on 10.x: read the engine's real dtype", name, op))
    # inputs TensorRT needs as build-time constants
    const_inputs = {"TopK": [1], "CumSum": [1]}
    if not spec.int64_native:  # 8.x: axes must be initializers
        const_inputs.update({"Slice": [3], "Squeeze": [1], "Unsqueeze": [1]})
    for i in const_inputs.get(op, []):
        if len(node.input) > i and node.input[i] and not view.is_constant(node.input[i]):
            add(LintIssue("error", "needs-constant", f"input {i} ('{node.input[i]}') must be a constant", name, op))
    if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
        add(LintIssue("error", "maxpool-indices", "the Indices output of MaxPool is unsupported", name, op))
    if op in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
        zp = view.initializers.get(node.input[2])
        if zp is not None:
            values = view.onnx.numpy_helper.to_array(zp)
            if values.size and abs(values).max() != 0:
                add(LintIssue("error", "qdq-zero-point", "zero point must be 0 (symmetric quantisation)", name, op))
        elif not view.is_constant(node.input[2]):
            add(LintIssue("error", "qdq-zero-point", "zero point must be a constant 0", name, op))
    if op in ("Conv", "ConvTranspose") and len(node.input) > 1:
        weight = node.input[1]
        if weight not in view.initializers:
            producer = view.producer.get(weight)
            if producer is not None and producer.op_type == "Cast" and producer.input[0] in view.initializers:
                add(LintIssue("info", "weights-cast", "weights are a Cast of an FP16 initialiser (fp16 storage): "
                              "TensorRT folds it at build time (8.5+)", name, op))
            elif producer is not None and producer.op_type == "DequantizeLinear":
                pass  # explicit quantisation: Q/DQ weights are the expected form
            elif producer is not None and producer.op_type == "Identity" and view.is_constant(producer.input[0]):
                pass  # an Identity of an initialiser (TorchScript's de-duplication) folds away
            elif not view.is_constant(weight):
                add(LintIssue("warning", "weights-runtime", "weights are computed at run time; TensorRT needs them "
                              "constant-foldable", name, op))
    if op == "Resize":
        mode = _attr(node, "mode", "nearest")
        coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
        if mode not in ("nearest", "linear") or coord not in _RESIZE_COORD_MODES or _attr(node, "antialias", 0):
            add(LintIssue("error", "resize-mode", f"Resize mode {mode}/{coord} is not supported", name, op))
