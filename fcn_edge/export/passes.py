"""Small ONNX graph passes applied after torch.onnx: node names after their modules, opset
down-conversion, INT32 index constants, FP16 weight storage, and the graph lookups
export and calibration share (producers, consumers, default opset, the logits tensor).

Each pass works on an ``onnx.ModelProto`` in place and is deliberately narrow: it
handles what our exported graphs contain and refuses anything else with a clear
error, rather than guessing.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import Any

import numpy as np

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.lazy import require

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)

# Reductions whose ``axes`` moved from attribute to input in opset 18.
_REDUCE_AXES_INPUT_18 = {"ReduceMax", "ReduceMin", "ReduceMean", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


class GraphPassError(FcnEdgeError):
    """The exported graph contains something a pass cannot express for the requested target."""


def _onnx():
    return require("onnx", purpose="to write ONNX models")


def _initializers(model) -> dict:
    return {init.name: init for init in model.graph.initializer}


def producers(model) -> dict[str, Any]:
    """tensor name -> the node that writes it."""
    return {out: node for node in model.graph.node for out in node.output if out}


def consumers(model) -> dict[str, list]:
    """tensor name -> the nodes that read it."""
    users = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            if name:
                users[name].append(node)
    return users


def default_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ArtifactError("the model imports no default-domain (ai.onnx) opset")


NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # node metadata torch.onnx (dynamo) writes


def name_nodes_by_module(model) -> int:
    """Name each node after the module that made it: ``/fcn/upscore8/ConvTranspose``.

    The dynamo exporter names nodes after the aten op (``node_convolution_2``), and that
    name is what TensorRT calls the layer in its logs, profiles and errors, and what the
    DLA pre-check and the lint print.  torch.onnx records each node's module path in
    its ``pkg.torch.onnx.name_scopes`` metadata (``['', 'fcn', 'fcn.upscore8',
    'convolution']``); the node becomes ``/<module path>/<OpType>`` (TorchScript's
    convention, with ``_1``, ``_2``... when one module makes several of a kind).  Nodes
    without that metadata keep their names.  Returns the number renamed.
    """
    planned: list[tuple[object, str]] = []
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == NAME_SCOPES_KEY), None)
        try:
            parts = ast.literal_eval(scopes) if scopes else None
        except (ValueError, SyntaxError):
            parts = None
        if not isinstance(parts, list) or len(parts) < 2:
            continue
        module = str(parts[-2]).replace(".", "/").strip("/")
        planned.append((node, f"/{module}/{node.op_type}" if module else f"/{node.op_type}"))
    renamed = {id(node) for node, _ in planned}
    taken = {node.name for node in model.graph.node if id(node) not in renamed}
    for node, base in planned:
        name, index = base, 0
        while name in taken:
            index += 1
            name = f"{base}_{index}"
        taken.add(name)
        node.name = name
    return len(planned)


# metadata_props the dynamo exporter and onnxscript attach to nodes, value infos and the graph:
# source file paths and line numbers of the exporting machine (``pkg.torch.onnx.stack_trace``),
# FX node dumps, class hierarchies, rewrite-rule names.  Debugging aids, not part of the model.
DEBUG_METADATA_PREFIXES = ("pkg.",)
DEBUG_METADATA_KEYS = ("namespace",)


def _is_debug_key(key: str) -> bool:
    return key in DEBUG_METADATA_KEYS or key.startswith(DEBUG_METADATA_PREFIXES)


def _strip_props(props) -> int:
    kept = [(p.key, p.value) for p in props if not _is_debug_key(p.key)]
    removed = len(props) - len(kept)
    if removed:
        del props[:]
        for key, value in kept:
            entry = props.add()
            entry.key, entry.value = key, value
    return removed


def _strip_graph(graph) -> int:
    removed = _strip_props(graph.metadata_props)
    for items in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in items:
            removed += _strip_props(item.metadata_props)
    for node in graph.node:
        removed += _strip_props(node.metadata_props)
        for attribute in node.attribute:
            if attribute.HasField("g"):
                removed += _strip_graph(attribute.g)
            for sub in attribute.graphs:
                removed += _strip_graph(sub)
    return removed


def strip_debug_metadata(model) -> int:
    """Remove the exporter's debugging metadata (see DEBUG_METADATA_PREFIXES); returns how many entries went.

    The dynamo exporter stores, on every node, the Python stack that made it -- absolute
    paths of the exporting machine's source tree and home folder -- plus FX dumps: a
    privacy leak in a file that is shipped to devices and customers, and tens of KB
    that nothing downstream reads.  The model-level ``metadata_props`` (fcn-edge's own
    description) are not touched.  Run after :func:`name_nodes_by_module`, which reads
    the name scopes.  ``fcn-edge export --keep-debug-metadata`` skips this pass.
    """
    removed = _strip_graph(model.graph)
    for function in model.functions:
        for node in function.node:
            removed += _strip_props(node.metadata_props)
        removed += _strip_props(function.metadata_props) if hasattr(function, "metadata_props") else 0
    return removed


def downgrade_opset(model, target: int) -> None:
    """Rewrite ``model`` from its (higher) default opset to ``target``.

    The dynamo exporter emits opset 18 natively.  Its own down-conversion goes through
    ONNX's version converter, which has no Pad 18->17 adapter, and then silently keeps
    opset 18 (TensorRT 8.5/8.6 refuse it).  Here every node whose operator schema is the
    same in both opsets is kept as it is; the two kinds that changed in 18 and that FCN
    graphs contain are rewritten (Pad: the new optional ``axes`` input, unused by us;
    Reduce*: ``axes`` back from an input to an attribute).  Anything else is refused.
    """
    onnx = _onnx()
    source = default_opset(model)
    if target >= source:
        return
    inits = _initializers(model)
    constants = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            old = onnx.defs.get_schema(node.op_type, target, "").since_version
        except onnx.defs.SchemaError:
            raise GraphPassError(f"node {node.name} ({node.op_type}) does not exist in opset {target}; "
                                 f"export with --opset {source}") from None
        new = onnx.defs.get_schema(node.op_type, source, "").since_version
        if old == new:
            continue
        if node.op_type == "Pad" and new == 18:
            if len(node.input) > 3 and node.input[3]:
                raise GraphPassError(f"node {node.name} pads selected axes (opset 18 only); export with --opset 18")
            del node.input[3:]
        elif node.op_type in _REDUCE_AXES_INPUT_18 and new == 18 and old < 18:
            noop = [a for a in node.attribute if a.name == "noop_with_empty_axes"]
            if noop and noop[0].i:
                raise GraphPassError(f"node {node.name} uses noop_with_empty_axes (opset 18 only); export with --opset 18")
            for attr in noop:
                node.attribute.remove(attr)
            if len(node.input) > 1 and node.input[1]:
                axes_name = node.input[1]
                if axes_name in inits:
                    axes = onnx.numpy_helper.to_array(inits[axes_name])
                elif axes_name in constants:
                    axes = onnx.numpy_helper.to_array(constants[axes_name].attribute[0].t)
                else:
                    raise GraphPassError(f"node {node.name} ({node.op_type}) computes its axes at run time; "
                                         f"export with --opset 18")
                del node.input[1:]
                node.attribute.append(onnx.helper.make_attribute("axes", [int(a) for a in np.ravel(axes)]))
        else:
            raise GraphPassError(f"node {node.name} ({node.op_type}) changed between opset {target} and {source} "
                                 f"and cannot be rewritten; export with --opset {source}")
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = target
    remove_unused_initializers(model)


def lowest_ir_version(model) -> int:
    """The oldest ONNX IR version that carries this model's operator sets.

    A file is only as portable as its IR version: ONNX Runtime 1.30 refuses IR 14 (what
    onnx 1.23 writes by default) and TensorRT 8.5's parser was built against onnx 1.12
    (IR 8, opset 17).  Nothing fcn-edge emits needs a newer IR than its opset implies.
    """
    onnx = _onnx()
    needed = 3
    for entry in model.opset_import:
        if entry.domain not in ("", "ai.onnx"):
            continue
        irs = [row[1] for row in onnx.helper.VERSION_TABLE if row[2] >= entry.version]
        if irs:
            needed = max(needed, min(irs))
    if model.functions:
        needed = max(needed, 8)  # model-local functions arrived with IR 8
    return needed


def pin_ir_version(model) -> int:
    """Lower ``model.ir_version`` to :func:`lowest_ir_version` (never raise it); returns it."""
    model.ir_version = min(int(model.ir_version or 10 ** 6), lowest_ir_version(model))
    return model.ir_version


def narrow_index_constants(model) -> int:
    """Store constant Gather indices and Slice parameters as INT32 instead of INT64.

    TensorRT 8.x has no INT64 tensors and casts INT64 initialisers down with a warning;
    these are small constants whose values fit INT32 (Slice's "to the end" INT64_MAX
    becomes INT32_MAX, the same thing for any real dimension).  Slice needs its
    starts/ends/axes/steps in one type, so a Slice is narrowed only when all of them are
    constants.  Returns the number of nodes changed.
    """
    onnx = _onnx()
    inits = _initializers(model)
    made: dict[str, str] = {}
    changed = 0

    def narrowed(name: str) -> str:
        if name not in made:
            values = onnx.numpy_helper.to_array(inits[name])
            values = np.clip(values, INT32_MIN, INT32_MAX).astype(np.int32)
            new_name = f"{name}__int32"
            model.graph.initializer.append(onnx.numpy_helper.from_array(values, new_name))
            made[name] = new_name
        return made[name]

    def is_int64_constant(name: str) -> bool:
        return name in inits and inits[name].data_type == onnx.TensorProto.INT64

    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and is_int64_constant(node.input[1]):
            values = onnx.numpy_helper.to_array(inits[node.input[1]])
            if values.size and (values.max() > INT32_MAX or values.min() < INT32_MIN):
                continue
            node.input[1] = narrowed(node.input[1])
            changed += 1
        elif node.op_type == "Slice":
            params = [i for i, name in enumerate(node.input) if i >= 1 and name]
            if params and all(is_int64_constant(node.input[i]) for i in params):
                for i in params:
                    node.input[i] = narrowed(node.input[i])
                changed += 1
    remove_unused_initializers(model)
    return changed


def store_weights_fp16(model, min_elements: int = 16) -> tuple[int, int]:
    """Keep Conv/ConvTranspose weights and biases as FLOAT16 initialisers, each followed by a Cast to FLOAT.

    The arithmetic stays FP32 (the graph is unchanged from the Casts on), only the
    file halves.  TensorRT's parser takes a Conv weight that is not an initialiser from
    8.5 on and the builder folds a Cast of a constant; ONNX Runtime runs it as is.
    Tensors smaller than ``min_elements`` and values beyond FP16's range stay FP32.
    Returns ``(tensors converted, bytes saved)``.
    """
    onnx = _onnx()
    inits = _initializers(model)
    users = consumers(model)
    casts = []
    converted = saved = 0
    for name, init in list(inits.items()):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        readers = users.get(name, [])
        if not readers or any(n.op_type not in ("Conv", "ConvTranspose") or list(n.input).index(name) == 0
                              for n in readers):
            continue
        values = onnx.numpy_helper.to_array(init)
        if values.size < min_elements or (values.size and np.abs(values).max() > 65504.0):
            continue
        half_name = f"{name}__fp16"
        half = onnx.numpy_helper.from_array(values.astype(np.float16), half_name)
        model.graph.initializer.remove(init)
        model.graph.initializer.append(half)
        casts.append(onnx.helper.make_node("Cast", [half_name], [name], name=f"{name}__to_fp32",
                                           to=onnx.TensorProto.FLOAT))
        converted += 1
        saved += values.nbytes // 2
    # Casts read only initialisers, so they can lead the (topologically sorted) node list.
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return converted, saved


def shapes_after_input_cast(model) -> int:
    """Make Shape/Size nodes read a graph input's Cast output instead of the UINT8 input itself.

    With dynamic H/W the exporter takes the shapes from the graph input, which for
    ``--io frames`` is UINT8, and TensorRT lets UINT8 only feed a Cast.  A Cast is
    elementwise, so ``Shape(Cast(frames)) == Shape(frames)``.  Returns nodes rewired.
    """
    onnx = _onnx()
    inputs = {i.name: i for i in model.graph.input}
    casts = {}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input and node.input[0] in inputs and node.input[0] not in casts:
            casts[node.input[0]] = node.output[0]
    changed = 0
    for node in model.graph.node:
        if node.op_type in ("Shape", "Size") and node.input and node.input[0] in casts:
            tensor = inputs[node.input[0]]
            if tensor.type.tensor_type.elem_type == onnx.TensorProto.UINT8:
                node.input[0] = casts[node.input[0]]
                changed += 1
    if changed:
        _topological_sort(model)
    return changed


def _topological_sort(model) -> None:
    """Reorder nodes so each comes after its producers (needed after rewiring inputs)."""
    nodes = list(model.graph.node)
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    ordered, pending = [], nodes
    while pending:
        remaining = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            raise GraphPassError("the graph has a cycle or reads a tensor nothing produces")
        pending = remaining
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def remove_unused_initializers(model) -> None:
    used = {name for node in model.graph.node for name in node.input}
    used |= {o.name for o in model.graph.output}
    keep = [init for init in model.graph.initializer if init.name in used]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)


def logits_tensor(model) -> str | None:
    """The float ``[N, C, H, W]`` logits inside an fcn-edge graph, or None when it cannot be told.

    The ``logits`` output when there is one, else the tensor the ArgMax (labels) or
    Softmax (confidence) behind an output reads, else the single output of a raw export.
    """
    outputs = [o.name for o in model.graph.output]
    if "logits" in outputs:
        return "logits"
    prod = producers(model)
    for name in outputs:
        node = prod.get(name)
        # labels = Cast(Cast(ArgMax(logits))); confidence = Cast(Floor(... ReduceMax(Softmax(logits))))
        seen = set()
        while node is not None and node.name not in seen:
            seen.add(node.name)
            if node.op_type in ("ArgMax", "Softmax"):
                return node.input[0]
            node = prod.get(node.input[0]) if node.input else None
    return outputs[0] if len(outputs) == 1 else None


def expose_tensor(model, name: str, elem_type: int | None = None) -> bool:
    """Add ``name`` to the graph outputs (no-op if it is one); returns True if added."""
    onnx = _onnx()
    if name in {o.name for o in model.graph.output}:
        return False
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, elem_type or onnx.TensorProto.FLOAT, None))
    return True
