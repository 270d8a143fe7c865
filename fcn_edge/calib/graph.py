"""Reading an fcn-edge FP32 graph for calibration: its regions, layer names and what may be quantized.

An exported graph has three regions (DEVELOPING.md, export contract):

* **pre**: the in-graph preprocessing of ``--io frames`` (Cast uint8 -> float,
  Transpose NHWC -> NCHW, channel Gather, ``* gain + offset`` normalisation): every node
  that runs before the first convolution;
* **body**: the FCN itself, from the first convolution up to the ``logits`` tensor;
* **post**: ArgMax / Cast to the ``labels`` output, Softmax / ReduceMax / scaling / Cast
  of ``confidence``: every node downstream of ``logits``.

Pre and post stay float (they are cheap, and quantizing ``pixel - mean`` or the argmax
input would only lose accuracy).  Layers are named after their weights
(``fcn.score_fr.weight`` -> ``score_fr``), the names of the PyTorch model and of the
Caffe originals, so ``--keep-float score_fr,upscore8`` means what a user expects.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.export.passes import (  # noqa: F401 - calib's graph toolbox, shared with export
    consumers, default_opset, logits_tensor, producers, remove_unused_initializers,
)
from fcn_edge.lazy import require

log = logging.getLogger("fcn_edge.calib")

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
QUANTIZED_OPS = QDQ_OPS + ("QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeLinear",
                           "QLinearAdd", "QLinearMul")
CONV_OPS = ("Conv", "ConvTranspose")
FLOAT_TYPES = (1,)  # TensorProto.FLOAT


def onnx_module():
    return require("onnx", purpose="to calibrate ONNX models")


@dataclass
class Layer:
    """One weighted node: its ONNX node name, op type and user-facing layer name."""

    node: str
    op_type: str
    name: str
    weight: str | None


@dataclass
class GraphRegions:
    """Which nodes are pre-processing, FCN body and post-processing (see the module doc)."""

    pre: list[str]
    body: list[str]
    post: list[str]
    logits: str | None
    layers: list[Layer] = field(default_factory=list)

    @property
    def protected(self) -> list[str]:
        """Nodes that must stay float whatever the options (pre- and post-processing)."""
        return self.pre + self.post

    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def layer_of(self, node_name: str) -> str:
        for layer in self.layers:
            if layer.node == node_name:
                return layer.name
        return node_name


def ensure_node_names(model) -> None:
    """Give every unnamed node a unique name: quantizer exclusions and reports go by node name."""
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        while name in seen:
            name = f"{name}_{index}"
        node.name = name
        seen.add(name)


def find_regions(model) -> GraphRegions:
    """Split the graph into pre / body / post (node names) and list its weighted layers."""
    users = consumers(model)
    prod = producers(model)
    inits = {i.name for i in model.graph.initializer}
    # body starts at the first convolution: everything reachable from a Conv is not "pre"
    after_conv = _reachable([n for n in model.graph.node if n.op_type in CONV_OPS], users)
    logits = logits_tensor(model)
    post = _reachable(users.get(logits, []), users) if logits is not None else set()
    pre, body, post_list = [], [], []
    for node in model.graph.node:
        if node.name in post:
            post_list.append(node.name)
        elif node.name in after_conv:
            body.append(node.name)
        else:
            pre.append(node.name)
    layers = _weighted_layers(model, set(body), inits, prod)
    return GraphRegions(pre, body, post_list, logits, layers)


def _reachable(start: Iterable[Any], users: dict[str, list]) -> set[str]:
    """Names of the ``start`` nodes and of every node downstream of them."""
    found: set[str] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        if node.name in found:
            continue
        found.add(node.name)
        for out in node.output:
            stack.extend(users.get(out, []))
    return found


def _weighted_layers(model, body: set[str], inits: set[str], prod: dict) -> list[Layer]:
    found: list[Layer] = []
    for node in model.graph.node:
        if node.name not in body or node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        weight = node.input[1] if len(node.input) > 1 else None
        source = weight
        producer = prod.get(weight) if weight else None
        if producer is not None and producer.op_type in ("Cast", "Identity", "DequantizeLinear") and producer.input:
            source = producer.input[0]
            upstream = prod.get(source)
            if upstream is not None and upstream.op_type == "QuantizeLinear" and upstream.input:
                source = upstream.input[0]
        name = _layer_name(source) if source and (source in inits or producer is not None) else node.name
        found.append(Layer(node.name, node.op_type, name, weight))
    counts: dict[str, int] = defaultdict(int)
    for layer in found:
        counts[layer.name] += 1
    shared = [layer for layer in found if counts[layer.name] > 1]
    taken = {layer.name for layer in found if counts[layer.name] == 1}
    for layer in shared:
        # a shared (de-duplicated) initializer, e.g. upscore2 and upscore_pool4's identical
        # bilinear kernels: the module that made the node names it (``/fcn/upscore_pool4/ConvTranspose``)
        module = _module_of(layer.node)
        if module and module not in taken:
            layer.name = module
            taken.add(module)
        else:
            layer.name = f"{layer.name}@{layer.node}"
    return found


def _module_of(node_name: str) -> str | None:
    """``/fcn/upscore_pool4/ConvTranspose`` -> ``upscore_pool4`` (export names nodes after their module)."""
    parts = [part for part in node_name.split("/") if part]
    return parts[-2] if len(parts) >= 2 else None


def _layer_name(weight: str) -> str:
    name = weight
    for suffix in (".weight", "_weight", ".W"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for prefix in ("fcn.", "model.", "module."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def resolve_keep_float(model, regions: GraphRegions, items: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Node names to keep float for ``--keep-float`` items (layer names, node names or op types).

    Returns (node names, {item: its node names}).  An item matching nothing is an error
    naming the layers there are, so a typo never silently quantizes a layer.
    """
    body = set(regions.body)
    by_item: dict[str, list[str]] = {}
    op_types = {node.op_type for node in model.graph.node if node.name in body}
    for item in items:
        nodes: list[str] = []
        layer_hits = [layer.node for layer in regions.layers
                      if layer.name == item or layer.name.split("@")[0] == item]
        if layer_hits:
            nodes = layer_hits
        elif item in op_types:
            nodes = [node.name for node in model.graph.node if node.name in body and node.op_type == item]
        elif item in body:
            nodes = [item]
        if not nodes:
            names = ", ".join(regions.layer_names()) or "none"
            raise FcnEdgeError(f"--keep-float {item!r} matches no layer, node or op type of this model; its layers are "
                               f"{names} (op types: {', '.join(sorted(op_types))})")
        by_item[item] = nodes
    keep = list(dict.fromkeys(n for nodes in by_item.values() for n in nodes))
    return keep, by_item


# --------------------------------------------------------------------------- refusals and preparation

def check_quantizable(model, path: Any) -> None:
    """Refuse graphs that are already quantized or have no float weights to quantize (one sentence each)."""
    onnx = onnx_module()
    quantized = [n for n in model.graph.node if n.op_type in QUANTIZED_OPS]
    if quantized:
        raise ArtifactError(f"{path} is already quantized ({len(quantized)} {quantized[0].op_type} nodes); "
                            "calibrate the FP32 ONNX from fcn-edge export instead")
    inits = {i.name: i for i in model.graph.initializer}
    prod = producers(model)
    float_weights = half_weights = 0
    for node in model.graph.node:
        if node.op_type not in CONV_OPS or len(node.input) < 2:
            continue
        weight = node.input[1]
        producer = prod.get(weight)
        if producer is not None and producer.op_type == "Cast" and producer.input[0] in inits:
            weight = producer.input[0]
        init = inits.get(weight)
        if init is None:
            continue
        if init.data_type == onnx.TensorProto.FLOAT:
            float_weights += 1
        elif init.data_type == onnx.TensorProto.FLOAT16:
            half_weights += 1
    if float_weights + half_weights == 0:
        raise ArtifactError(f"{path} has no float convolution weights to quantize; give the FP32 ONNX written by "
                            "fcn-edge export")
    half_compute = any(vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
                       for vi in list(model.graph.input) + list(model.graph.value_info)
                       if vi.type.HasField("tensor_type"))
    if half_compute:
        raise ArtifactError(f"{path} computes in FP16; INT8 calibration needs the FP32 ONNX (re-export without the "
                            "FP16 conversion, then calibrate)")


def fold_half_weights(model) -> int:
    """Turn ``Cast(float16 initializer -> float)`` weights (``--fp16-weights`` exports) back into float32 initializers.

    The ONNX Runtime quantizer only recognises initializers as weights: a Cast output
    would be quantized per tensor like an activation.  float16 -> float32 is exact, so
    the folded graph computes the same values.  Returns the number of weights folded.
    """
    onnx = onnx_module()
    np = require("numpy")
    inits = {i.name: i for i in model.graph.initializer}
    folded = 0
    keep_nodes = []
    for node in model.graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        source = inits.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if source is not None and source.data_type == onnx.TensorProto.FLOAT16 and to == onnx.TensorProto.FLOAT:
            values = onnx.numpy_helper.to_array(source).astype(np.float32)
            model.graph.initializer.append(onnx.numpy_helper.from_array(values, node.output[0]))
            folded += 1
            continue
        keep_nodes.append(node)
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(keep_nodes)
        remove_unused_initializers(model)
        # value_info of the former Cast outputs now describes initializers: drop it
        names = {i.name for i in model.graph.initializer}
        infos = [vi for vi in model.graph.value_info if vi.name not in names]
        del model.graph.value_info[:]
        model.graph.value_info.extend(infos)
    return folded


def float_activation_tensors(model, nodes: Iterable[str]) -> list[str]:
    """Float, non-initializer tensors read or written by ``nodes`` (for ranges and caches)."""
    onnx = onnx_module()
    wanted = set(nodes)
    inits = {i.name for i in model.graph.initializer}
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.value_info) + list(model.graph.input)
             + list(model.graph.output) if vi.type.HasField("tensor_type")}
    tensors: list[str] = []
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        for name in list(node.input) + list(node.output):
            if name and name not in inits and types.get(name) == onnx.TensorProto.FLOAT and name not in tensors:
                tensors.append(name)
    return tensors
