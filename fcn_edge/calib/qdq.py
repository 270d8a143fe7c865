"""The rules a Q/DQ graph must follow for TensorRT, checked, and fixed where the quantizer slips.

TensorRT's explicit quantization (the developer guide's "Working with Quantized Types"
and NVIDIA ModelOpt's ONNX quantizer) accepts:

* symmetric quantization only: every zero point is 0, of type INT8;
* weights quantized per output channel: Conv on axis 0 (``[Cout, Cin, kh, kw]``),
  ConvTranspose on axis 1 (``[Cin, Cout/group, kh, kw]``), one positive scale per channel;
* activations quantized per tensor (one scale);
* no Q/DQ on a graph output (the output keeps its float type and name);
* Q/DQ of opset 13 form: no ``block_size`` / ``output_dtype`` / ``saturate`` attributes
  (opset 19/21 additions TensorRT 8.x does not parse), opset within the target's limit;
* the in-graph pre- and post-processing stays float: none of its nodes reads a
  DequantizeLinear output and none of its nodes was removed.

:func:`fix_qdq_graph` repairs what ONNX Runtime's quantizer can leave behind against
these rules (a non-zero or unsigned zero point, a ConvTranspose weight quantized on
axis 0, a zero scale for an all-zero tensor, Q/DQ on a graph output); anything it cannot
repair is reported by :func:`check_qdq_graph` and refused by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from fcn_edge.calib.graph import consumers, default_opset, onnx_module, producers

INT8_MAX = 127
MIN_SCALE = float(np.finfo(np.float32).tiny) * 2 ** 24   # ~2e-31: positive and finite after any float32 math


@dataclass
class QdqIssue:
    rule: str
    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.node}: {self.message} [{self.rule}]"


@dataclass
class QdqSummary:
    """What the Q/DQ graph holds (for the report) and the problems found."""

    quantized_nodes: list[str] = field(default_factory=list)     # nodes reading a DQ output
    activation_qdq: int = 0
    weight_qdq: int = 0
    per_channel_weights: int = 0
    issues: list[QdqIssue] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues


def _attr(node, name: str, default=None):
    onnx = onnx_module()
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _set_attr(node, name: str, value) -> None:
    onnx = onnx_module()
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _const(model, name: str):
    """Value of an initializer or Constant node output, or None."""
    onnx = onnx_module()
    for init in model.graph.initializer:
        if init.name == name:
            return onnx.numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            return onnx.numpy_helper.to_array(node.attribute[0].t)
    return None


def _replace_init(model, name: str, array: np.ndarray) -> None:
    onnx = onnx_module()
    for index, init in enumerate(model.graph.initializer):
        if init.name == name:
            model.graph.initializer[index].CopyFrom(onnx.numpy_helper.from_array(array, name))
            return
    model.graph.initializer.append(onnx.numpy_helper.from_array(array, name))


def _weight_axis(op_type: str) -> int:
    return 1 if op_type == "ConvTranspose" else 0


def _weight_consumer(model, dq, users) -> Any:
    """The Conv/ConvTranspose whose weight input (slot 1) is this DequantizeLinear's output, if any."""
    for node in users.get(dq.output[0], []):
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and len(node.input) > 1 \
                and node.input[1] == dq.output[0]:
            return node
    return None


def _weight_source(model, dq, prod) -> tuple[str | None, np.ndarray | None, Any]:
    """For a weight DQ: (float initializer name, its values, the Q node) when weights are Q->DQ of floats."""
    q = prod.get(dq.input[0])
    if q is not None and q.op_type == "QuantizeLinear":
        values = _const(model, q.input[0])
        if values is not None and values.dtype == np.float32:
            return q.input[0], values, q
    return None, None, None


def fix_qdq_graph(model, protected: Sequence[str] = ()) -> list[str]:
    """Repair what TensorRT would refuse (see the module doc); returns one line per repair.

    ``protected`` (pre/post-processing node names) get float inputs back should a
    quantizer have put Q/DQ in front of them.
    """
    fixes: list[str] = []
    fixes += _fix_weight_quantization(model)
    fixes += _fix_activation_zero_points(model)
    fixes += _remove_output_qdq(model)
    rewired = bypass_inputs(model, protected)
    if rewired:
        fixes.append(f"pre/post-processing reads float again: {', '.join(rewired)}")
    return fixes


def _qdq_pair(prod: dict, tensor: str) -> tuple[Any, Any] | None:
    """``(q, dq)`` when ``tensor`` is ``DequantizeLinear(QuantizeLinear(x))`` (``prod``: tensor -> producer), else None."""
    dq = prod.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = prod.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear":
        return None
    return q, dq


def bypass_inputs(model, nodes: Sequence[str]) -> list[str]:
    """In place: inputs of ``nodes`` that come from ``DequantizeLinear(QuantizeLinear(x))`` read ``x`` again.

    The Q/DQ pair stays for its other readers and is removed when it has none left.
    Returns the names of the nodes that were rewired.
    """
    prod = producers(model)
    wanted = set(nodes)
    rewired = []
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        for slot, name in enumerate(node.input):
            pair = _qdq_pair(prod, name)
            if pair is None:
                continue
            node.input[slot] = pair[0].input[0]
            if node.name not in rewired:
                rewired.append(node.name)
    if rewired:
        _drop_dangling_qdq(model)
    return rewired


def _drop_dangling_qdq(model) -> None:
    outputs = {o.name for o in model.graph.output}
    changed = True
    while changed:
        changed = False
        users = consumers(model)
        for node in list(model.graph.node):
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not users.get(node.output[0]) \
                    and node.output[0] not in outputs:
                model.graph.node.remove(node)
                changed = True


def _symmetric_per_channel(values: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    amax = np.abs(moved).max(axis=1) if moved.size else np.zeros(values.shape[axis], np.float32)
    return np.maximum(amax / INT8_MAX, MIN_SCALE).astype(np.float32)


def _fix_weight_quantization(model) -> list[str]:
    """Per-channel symmetric scales on the right axis for every Q->DQ weight of a Conv/ConvTranspose."""
    fixes = []
    prod, users = producers(model), consumers(model)
    for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear"]:
        conv = _weight_consumer(model, dq, users)
        if conv is None or conv.op_type not in ("Conv", "ConvTranspose"):
            continue
        name, values, q = _weight_source(model, dq, prod)
        if values is None:
            continue  # int8 initializer + DQ: checked, not rewritten
        axis = _weight_axis(conv.op_type)
        group = int(_attr(conv, "group", 1) or 1)
        scale = _const(model, dq.input[1])
        zero = _const(model, dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
        current_axis = int(_attr(dq, "axis", 1))
        channels = values.shape[axis]
        good = (scale is not None and scale.ndim == 1 and scale.size == channels and current_axis == axis
                and np.all(np.isfinite(scale)) and np.all(scale > 0)
                and (zero is None or (zero.dtype == np.int8 and not np.any(zero))))
        if good:
            continue
        if conv.op_type == "ConvTranspose" and group != 1:
            continue  # reported by the check: per-channel over Cout/group is not expressible
        new_scale = _symmetric_per_channel(values, axis)
        scale_name = f"{name}_scale_axis{axis}"
        zero_name = f"{name}_zero_point_axis{axis}"
        _replace_init(model, scale_name, new_scale)
        _replace_init(model, zero_name, np.zeros(channels, dtype=np.int8))
        for node in (q, dq):
            node.input[1] = scale_name
            if len(node.input) > 2:
                node.input[2] = zero_name
            else:
                node.input.append(zero_name)
            _set_attr(node, "axis", axis)
        fixes.append(f"{conv.name}: weight {name} re-quantized per channel on axis {axis} "
                     f"(was axis {current_axis}, {0 if scale is None else scale.size} scale(s))")
    return fixes


def _fix_activation_zero_points(model) -> list[str]:
    """Make every per-tensor Q/DQ pair symmetric int8 with a positive scale, keeping the range it covered."""
    fixes = []
    seen: set[tuple[str, str]] = set()
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 2:
            continue
        scale = _const(model, node.input[1])
        if scale is None or scale.size != 1:
            continue
        zero_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        zero = _const(model, zero_name) if zero_name else None
        zero_ok = zero is None or (zero.dtype == np.int8 and not np.any(zero))
        scale_value = float(np.asarray(scale).reshape(-1)[0])
        scale_ok = np.isfinite(scale_value) and scale_value > 0
        key = (node.input[1], zero_name or "")
        if (zero_ok and scale_ok) or key in seen:
            continue
        seen.add(key)
        # the real range the asymmetric pair covered: scale * ([qmin, qmax] - zero)
        if zero is not None and zero.dtype == np.uint8:
            qmin, qmax = 0, 255
        else:
            qmin, qmax = -128, 127
        z = float(np.asarray(zero).reshape(-1)[0]) if zero is not None else 0.0
        low, high = scale_value * (qmin - z), scale_value * (qmax - z)
        amax = max(abs(low), abs(high)) if np.isfinite(scale_value) else 0.0
        new_scale = np.array(max(amax / INT8_MAX, MIN_SCALE), dtype=np.float32).reshape(scale.shape)
        _replace_init(model, node.input[1], new_scale)
        new_zero = f"{node.input[1]}_zero_point_int8"
        _replace_init(model, new_zero, np.zeros(scale.shape, dtype=np.int8))
        for other in model.graph.node:
            if other.op_type in ("QuantizeLinear", "DequantizeLinear") and len(other.input) > 1 \
                    and other.input[1] == node.input[1]:
                if len(other.input) > 2:
                    other.input[2] = new_zero
                else:
                    other.input.append(new_zero)
        fixes.append(f"{node.name}: activation zero point {z:g} ({'uint8' if qmax == 255 else 'int8'}) made symmetric "
                     f"int8 0, scale {scale_value:.6g} -> {float(new_scale.reshape(-1)[0]):.6g}")
    return fixes


def _remove_output_qdq(model) -> list[str]:
    """A graph output produced by DQ(Q(x)): produce it from x directly (its name and float type are kept)."""
    fixes = []
    outputs = {o.name for o in model.graph.output}
    prod = producers(model)
    for out in sorted(outputs):
        pair = _qdq_pair(prod, out)
        if pair is None:
            continue
        q, dq = pair
        source = q.input[0]
        source_node = prod.get(source)
        users = consumers(model)
        remove = [dq]
        if all(u is dq for u in users.get(q.output[0], [])):
            remove.append(q)
        for node in remove:
            model.graph.node.remove(node)
        # the float tensor takes the output's name; its other readers follow the rename
        if source_node is not None and source not in outputs:
            for slot, name in enumerate(source_node.output):
                if name == source:
                    source_node.output[slot] = out
            for node in model.graph.node:
                for slot, name in enumerate(node.input):
                    if name == source:
                        node.input[slot] = out
        else:
            model.graph.node.append(onnx_module().helper.make_node("Identity", [source], [out], name=f"{out}_float"))
        fixes.append(f"graph output {out}: removed its Q/DQ pair (outputs stay float)")
    return fixes


# --------------------------------------------------------------------------- checks

def check_qdq_graph(model, *, max_opset: int, protected: Sequence[str] = (), protected_ops: dict | None = None,
                    require_quantized: Sequence[str] = ()) -> QdqSummary:
    """Every rule of the module doc; returns a summary whose ``issues`` are what TensorRT would refuse.

    ``protected`` are the pre/post node names that must read no DQ output;
    ``protected_ops`` maps them to their op types in the FP32 graph (all must still be
    there); ``require_quantized`` are nodes whose inputs must come through Q/DQ.
    """
    summary = QdqSummary()
    add = lambda rule, node, message: summary.issues.append(QdqIssue(rule, node, message))  # noqa: E731
    opset = default_opset(model)
    if opset > max_opset:
        add("opset", "model", f"opset {opset} is above the target's {max_opset}")
    if opset < 13:
        add("opset", "model", f"opset {opset} has no per-channel DequantizeLinear (needs 13)")
    prod, users = producers(model), consumers(model)
    outputs = {o.name for o in model.graph.output}
    by_name = {n.name: n for n in model.graph.node}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if node.domain not in ("", "ai.onnx"):
            add("domain", node.name, f"{node.op_type} from domain '{node.domain}' (TensorRT parses ai.onnx Q/DQ only)")
        for attr in ("block_size", "output_dtype", "saturate"):
            if any(a.name == attr for a in node.attribute):
                add("opset13-form", node.name, f"attribute '{attr}' (opset 19/21 only)")
        scale = _const(model, node.input[1]) if len(node.input) > 1 else None
        if scale is None:
            add("constant-scale", node.name, "scale is not a constant")
            continue
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            add("positive-scale", node.name, "scale must be positive and finite")
        zero = _const(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and zero is None:
            add("zero-point", node.name, "zero point is not a constant")
        elif zero is not None and (zero.dtype != np.int8 or np.any(zero)):
            add("zero-point", node.name, f"zero point must be int8 0 (got {zero.dtype} max {int(np.abs(zero).max())})")
        elif zero is None and node.op_type == "QuantizeLinear":
            add("zero-point", node.name, "QuantizeLinear without a zero point quantizes to uint8")
        if node.op_type != "DequantizeLinear":
            continue
        if node.output[0] in outputs:
            add("output-qdq", node.name, f"graph output {node.output[0]} comes from a DequantizeLinear")
        conv = _weight_consumer(model, node, users)
        if conv is not None:
            summary.weight_qdq += 1
            axis = int(_attr(node, "axis", 1))
            expected = _weight_axis(conv.op_type) if conv.op_type in ("Conv", "ConvTranspose") else None
            weights = _weight_source(model, node, prod)[1]
            if weights is None:
                weights = _const(model, node.input[0])
            if scale.size > 1:
                summary.per_channel_weights += 1
                if expected is not None and axis != expected:
                    add("weight-axis", conv.name, f"{conv.op_type} weights quantized on axis {axis}; TensorRT needs {expected}")
                elif weights is not None and expected is not None and scale.size != weights.shape[expected]:
                    add("weight-axis", conv.name, f"{scale.size} weight scales for {weights.shape[expected]} channels")
            elif weights is not None and expected is not None and weights.shape[expected] > 1:
                add("per-channel", conv.name, "weights quantized per tensor; TensorRT INT8 convolutions want per-channel")
        else:
            summary.activation_qdq += 1
            if scale.size != 1:
                add("per-tensor", node.name, "activation quantized per channel; TensorRT wants one scale per tensor")
        for reader in users.get(node.output[0], []):
            if reader.op_type not in ("QuantizeLinear", "DequantizeLinear") and reader.name not in summary.quantized_nodes:
                summary.quantized_nodes.append(reader.name)
    for name in protected:
        node = by_name.get(name)
        if node is None:
            add("pre-post-float", name, "pre/post-processing node is missing from the quantized graph")
            continue
        if protected_ops and protected_ops.get(name) not in (None, node.op_type):
            add("pre-post-float", name, f"pre/post-processing node changed from {protected_ops[name]} to {node.op_type}")
        for tensor in node.input:
            source = prod.get(tensor)
            if source is not None and source.op_type == "DequantizeLinear":
                add("pre-post-float", name, f"{node.op_type} reads the quantized tensor {tensor}")
    for name in require_quantized:
        node = by_name.get(name)
        if node is None:
            add("quantized", name, "node is missing from the quantized graph")
            continue
        if not any(prod.get(t) is not None and prod[t].op_type == "DequantizeLinear" for t in node.input[:1]):
            add("quantized", name, f"{node.op_type} input is not quantized")
    return summary
