"""DLA pre-check on the ONNX (no TensorRT needed) and the DLA-friendly deconvolution rewrite.

Jetson Xavier and AGX Orin have DLA cores: fixed-function convolution engines that
take a subset of TensorRT's layers with tight parameter limits.  A DLA build fails
deep inside TensorRT (or silently runs most of the network on the GPU) when a layer
does not fit, so build-engine checks the graph first and names every layer that will
not go to DLA, and why.

Limits used (TensorRT's "DLA Supported Layers and Restrictions", TensorRT 8.5-10.7 on
Xavier/Orin; the builder has the final word):

* Convolution: 2-D, kernel 1-32, stride 1-8, dilation 1-32, padding 0-31, 1-8192 output channels.
* Deconvolution: 2-D, kernel 1-32, stride 1-32, **padding 0**, groups 1, no dilation,
  no output padding.  FCN-32s's 64-wide, stride-32 upsampling cannot run there.
* Pooling (max/average): 2-D, window 1-8, stride 1-16, padding 0-7.
* Activations (ReLU, Sigmoid, Tanh, LeakyReLU, Clip as clipped ReLU), element-wise
  Add/Sub/Mul/Div/Max/Min/Pow, BatchNormalization (scale), channel Concat, Slice (FP16).
* Static shapes only (the optimisation profile's min = opt = max).
* Everything else (Cast, Transpose/Reshape, ArgMax/TopK, Softmax, Pad, Gather, ...) has
  no DLA implementation here and runs on the GPU with --gpu-fallback.

**The aligned geometry and DLA.**  fcn-edge's ``aligned`` FCN pads its transposed
convolutions by stride/2 (upscore2 and upscore_pool4 by 1, upscore8 by 4) so the
upsampled maps land exactly on 1/16, 1/8 and full size.  TensorRT's ONNX parser turns
ConvTranspose ``pads`` into the deconvolution layer's pre/post padding, which DLA
rejects.  :func:`unpad_deconvolutions` rewrites each such node as an *unpadded*
deconvolution followed by a crop (Slice) of ``pad`` pixels on each side: the same
numbers, and a deconvolution DLA accepts.  build-engine applies it to DLA builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fcn_edge.engine.plan import BuildRefused
from fcn_edge.lazy import require

CORE_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool")
NO_LAYER_OPS = ("Identity", "Dropout", "Constant")
ELEMENTWISE_OPS = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow")
ACTIVATION_OPS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "PRelu")


@dataclass(frozen=True)
class LayerVerdict:
    """Where one ONNX node will run on a DLA build."""

    name: str
    op_type: str
    where: str          # "dla" | "gpu" | "none" (folded away, no layer)
    reason: str = ""

    @property
    def is_core(self) -> bool:
        return self.op_type in CORE_OPS


@dataclass
class DlaReport:
    """The pre-check's findings for one ONNX graph."""

    layers: list[LayerVerdict]
    static_shapes: bool
    general_problems: list[str] = field(default_factory=list)

    @property
    def core(self) -> list[LayerVerdict]:
        return [v for v in self.layers if v.is_core]

    @property
    def core_off_dla(self) -> list[LayerVerdict]:
        return [v for v in self.core if v.where != "dla"]

    @property
    def gpu_layers(self) -> list[LayerVerdict]:
        return [v for v in self.layers if v.where == "gpu"]

    @property
    def core_on_dla(self) -> bool:
        """True when every conv/deconv/pool layer can run on DLA."""
        return not self.core_off_dla

    def lines(self) -> list[str]:
        """The report for the terminal."""
        core = self.core
        out = [f"DLA pre-check (TensorRT's DLA limits for Xavier/Orin; the builder has the final word): "
               f"{len(core) - len(self.core_off_dla)} of {len(core)} conv/deconv/pool layers can run on DLA"]
        out += [f"  cannot run on DLA: {v.name} ({v.op_type}): {v.reason}" for v in self.core_off_dla]
        others = [v for v in self.gpu_layers if not v.is_core]
        if others:
            out.append("  GPU fallback for the non-conv layers: "
                       + "; ".join(f"{v.name} ({v.op_type})" for v in others))
        out += [f"  {problem}" for problem in self.general_problems]
        return out

    def enforce(self, gpu_fallback: bool, onnx_name: str) -> list[str]:
        """Raise if the build cannot succeed; return warnings otherwise."""
        if self.general_problems:
            raise BuildRefused(f"{onnx_name} cannot be built for DLA: {self.general_problems[0]}")
        if not gpu_fallback and self.gpu_layers:
            ordered = sorted(self.gpu_layers, key=lambda v: not v.is_core)  # the conv/deconv problems first
            listed = "; ".join(f"{v.name} ({v.op_type}: {v.reason})" for v in ordered[:4])
            more = f" and {len(self.gpu_layers) - 4} more" if len(self.gpu_layers) > 4 else ""
            raise BuildRefused(f"DLA without --gpu-fallback needs every layer on DLA, but {len(self.gpu_layers)} layers of "
                               f"{onnx_name} cannot run there ({listed}{more}): add --gpu-fallback")
        warnings = []
        for verdict in self.core_off_dla:
            warnings.append(f"{verdict.name} ({verdict.op_type}) cannot run on DLA ({verdict.reason}); it will run on the GPU")
        return warnings


def dla_precheck(model: Any, *, static_shapes: bool | None = None) -> DlaReport:
    """Check every node of ``model`` (a ModelProto) against DLA's limits.

    ``static_shapes`` says whether the build's shapes are fixed; by default the graph
    inputs are inspected (a dynamic input without a pinned profile is a problem).
    """
    onnx = require("onnx", purpose="to check an ONNX model for DLA")
    graph = model.graph
    inits = {init.name: tuple(init.dims) for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    layers = [_verdict(node, inits, producers, onnx) for node in graph.node]
    if static_shapes is None:
        init_names = set(inits)
        static_shapes = all(d.HasField("dim_value") and d.dim_value > 0
                            for vi in graph.input if vi.name not in init_names
                            for d in vi.type.tensor_type.shape.dim)
    problems = [] if static_shapes else [
        "DLA needs static shapes: export with a fixed size and batch, or give equal --min/--opt/--max-shape"]
    return DlaReport(layers, bool(static_shapes), problems)


def _attrs(node: Any, onnx: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _weight_dims(node: Any, inits: dict[str, tuple[int, ...]], producers: dict[str, Any]) -> tuple[int, ...] | None:
    if len(node.input) < 2:
        return None
    name = node.input[1]
    for _ in range(4):  # through Identity / DequantizeLinear to the initializer
        if name in inits:
            return inits[name]
        producer = producers.get(name)
        if producer is None or not producer.input:
            return None
        name = producer.input[0]
    return None


def _out_of(values: list[int], low: int, high: int) -> bool:
    return any(v < low or v > high for v in values)


def _verdict(node: Any, inits: dict, producers: dict, onnx: Any) -> LayerVerdict:
    name = node.name or (node.output[0] if node.output else node.op_type)
    op = node.op_type
    attrs = _attrs(node, onnx)

    def dla() -> LayerVerdict:
        return LayerVerdict(name, op, "dla")

    def gpu(reason: str) -> LayerVerdict:
        return LayerVerdict(name, op, "gpu", reason)

    if op in NO_LAYER_OPS:
        return LayerVerdict(name, op, "none", "no layer (folded away)")
    if op in ("Conv", "ConvTranspose"):
        dims = _weight_dims(node, inits, producers)
        kernel = list(attrs.get("kernel_shape") or (dims[2:] if dims else []))
        if len(kernel) != 2:
            return gpu("only 2-D (de)convolutions run on DLA")
        strides = list(attrs.get("strides", [1, 1]))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        dilations = list(attrs.get("dilations", [1, 1]))
        group = int(attrs.get("group", 1))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            return gpu("auto_pad SAME is not checked for DLA; export with explicit pads")
        if op == "Conv":
            out_channels = dims[0] if dims else None
            problems = []
            if _out_of(kernel, 1, 32):
                problems.append(f"kernel {kernel[0]}x{kernel[1]} is outside DLA's 1-32")
            if _out_of(strides, 1, 8):
                problems.append(f"stride {strides[0]}x{strides[1]} is outside DLA's 1-8")
            if _out_of(dilations, 1, 32):
                problems.append(f"dilation {dilations} is outside DLA's 1-32")
            if _out_of(pads, 0, 31):
                problems.append(f"padding {max(pads)} is outside DLA's 0-31")
            if out_channels is not None and out_channels > 8192:
                problems.append(f"{out_channels} output channels exceed DLA's 8192")
            if group > 8192:
                problems.append(f"{group} groups exceed DLA's 8192")
            return gpu("; ".join(problems)) if problems else dla()
        # ConvTranspose
        out_channels = dims[1] * group if dims else None
        problems = []
        if _out_of(kernel, 1, 32):
            problems.append(f"kernel {kernel[0]}x{kernel[1]} exceeds DLA's 1-32")
        if _out_of(strides, 1, 32):
            problems.append(f"stride {strides[0]}x{strides[1]} is outside DLA's 1-32")
        if any(p != 0 for p in pads):
            problems.append(f"padding {max(pads)} (DLA deconvolutions need padding 0; fcn-edge rewrites padded ones "
                            "as unpadded deconvolution + crop for DLA builds)")
        if any(p != 0 for p in attrs.get("output_padding", [])) or "output_shape" in attrs:
            problems.append("output_padding/output_shape is not supported on DLA")
        if group != 1:
            problems.append(f"groups {group} (DLA deconvolutions need 1)")
        if any(d != 1 for d in dilations):
            problems.append("dilated deconvolution is not supported on DLA")
        if out_channels is not None and out_channels > 8192:
            problems.append(f"{out_channels} output channels exceed DLA's 8192")
        return gpu("; ".join(problems)) if problems else dla()
    if op in ("MaxPool", "AveragePool"):
        kernel = list(attrs.get("kernel_shape", []))
        strides = list(attrs.get("strides", [1] * len(kernel)))
        pads = list(attrs.get("pads", [0] * 2 * len(kernel)))
        problems = []
        if len(kernel) != 2:
            problems.append("only 2-D pooling runs on DLA")
        if _out_of(kernel, 1, 8):
            problems.append(f"window {kernel} is outside DLA's 1-8")
        if _out_of(strides, 1, 16):
            problems.append(f"stride {strides} is outside DLA's 1-16")
        if _out_of(pads, 0, 7):
            problems.append(f"padding {max(pads) if pads else 0} is outside DLA's 0-7")
        return gpu("; ".join(problems)) if problems else dla()
    if op in ACTIVATION_OPS or op in ELEMENTWISE_OPS or op == "BatchNormalization":
        return dla()
    if op == "Clip":
        return dla()  # clipped ReLU; non-zero minimums may still fall back (TensorRT decides)
    if op == "Concat":
        return dla() if int(attrs.get("axis", 1)) == 1 else gpu("DLA concatenates along channels only")
    if op == "Slice":
        return dla()  # static slices; DLA runs them in FP16 (TensorRT's operator reference)
    if op in ("ArgMax", "ArgMin", "TopK"):
        return gpu("ArgMax/TopK has no DLA implementation")
    if op == "Cast":
        return gpu("type casts (uint8 frames in, labels out) have no DLA implementation")
    if op in ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze"):
        return gpu("layout changes (shuffle) are not taken on DLA by fcn-edge's check")
    if op in ("QuantizeLinear", "DequantizeLinear"):
        return gpu("Q/DQ graphs are not DLA's INT8 road on TensorRT <= 10 (use --calib-cache)")
    return gpu(f"{op} has no DLA implementation")


def unpad_deconvolutions(model: Any) -> tuple[Any, list[str]]:
    """Rewrite padded ConvTranspose nodes as unpadded ConvTranspose + Slice (same output).

    A ConvTranspose with pads (t, l, b, r) equals the unpadded one cropped by t/b rows
    and l/r columns.  The unpadded deconvolution keeps the original output tensor name
    unless that tensor is a graph output, so a TensorRT calibration cache written for
    the original graph still has a range for it; the crop's output is new (and DLA
    runs slices in FP16).  Returns the new model and the rewritten node names.
    """
    onnx = require("onnx", purpose="to rewrite ONNX deconvolutions for DLA")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    np = require("numpy")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    graph_outputs = {vi.name for vi in graph.output}
    rewritten: list[str] = []
    new_nodes = []
    renames: dict[str, str] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name in renames:
                node.input[slot] = renames[name]
        pads_attr = next((a for a in node.attribute if a.name == "pads"), None)
        if node.op_type != "ConvTranspose" or pads_attr is None or not any(pads_attr.ints):
            new_nodes.append(node)
            continue
        pads = list(pads_attr.ints)
        rank = len(pads) // 2
        begins, ends = pads[:rank], pads[rank:]
        label = node.name or node.output[0]
        original = node.output[0]
        if original in graph_outputs:
            deconv_out, crop_out = f"{original}__uncropped", original
        else:
            deconv_out, crop_out = original, f"{original}__dla_crop"
            renames[original] = crop_out
        node.output[0] = deconv_out
        pads_attr.ClearField("ints")
        pads_attr.ints.extend([0] * (2 * rank))
        axes = list(range(2, 2 + rank))
        prefix = f"{label}/dla_crop"
        graph.initializer.extend([
            numpy_helper.from_array(np.array(begins, np.int64), f"{prefix}/starts"),
            numpy_helper.from_array(np.array([-e if e else np.iinfo(np.int64).max for e in ends], np.int64), f"{prefix}/ends"),
            numpy_helper.from_array(np.array(axes, np.int64), f"{prefix}/axes"),
        ])
        new_nodes.append(node)
        new_nodes.append(helper.make_node("Slice", [deconv_out, f"{prefix}/starts", f"{prefix}/ends", f"{prefix}/axes"],
                                          [crop_out], name=prefix))
        rewritten.append(label)
    graph.ClearField("node")
    graph.node.extend(new_nodes)
    graph.ClearField("value_info")
    onnx.checker.check_model(out)
    return out, rewritten
