"""What build-engine needs to know about an ONNX file, read once with the onnx package.

The graph (inputs, outputs, ops, weight dtypes) comes from the loaded ``ModelProto``;
the fcn-edge description (``fcn_edge.model`` / ``fcn_edge.export`` metadata_props)
goes through the exporter's parser, :func:`fcn_edge.export.parse_metadata_props`, the
same one every stage uses.  An ONNX made by another tool (no fcn-edge keys) still
builds, from the graph alone; an fcn-edge ONNX whose description is broken or
incomplete is refused with what to do, because the engine's sidecar would otherwise
carry no classes, palette or preprocessing and the runtime would guess them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_edge.errors import ArtifactError
from fcn_edge.artifacts.onnx_metadata import check_onnx_file_external_data, parse_metadata_props
from fcn_edge.artifacts.protowire import ELEM_TYPES
from fcn_edge.fileio import require_file, sha256_file
from fcn_edge.lazy import require

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class TensorFacts:
    """A graph input or output: name, dims (int, or a string for a dynamic dim) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.shape) if not isinstance(d, int) or d < 1)

    @property
    def is_dynamic(self) -> bool:
        return bool(self.dynamic_axes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class OnnxFacts:
    """The facts of one ONNX file that decide how an engine is built from it."""

    path: Path
    sha256: str
    opset: int
    inputs: tuple[TensorFacts, ...]
    outputs: tuple[TensorFacts, ...]
    op_types: frozenset[str]
    has_qdq: bool
    float_weight_dtypes: frozenset[str]   # dtypes of the Conv/ConvTranspose weights
    padded_deconvs: tuple[str, ...] = ()  # ConvTranspose nodes with non-zero pads (DLA takes padding 0 only)
    model_info: dict[str, Any] | None = None     # ModelInfo.to_dict() if the ONNX describes itself
    export_info: dict[str, Any] = field(default_factory=dict)  # ExportFacts.to_dict() if it does

    @property
    def is_fp16(self) -> bool:
        """Weights stored in half: an FP16 ONNX (exported or converted)."""
        return self.float_weight_dtypes == frozenset({"float16"})

    @property
    def is_dynamic(self) -> bool:
        return any(t.is_dynamic for t in self.inputs)

    @property
    def recorded_dynamic(self) -> dict[str, list[int]] | None:
        """The export's recorded ``dynamic`` ranges ``{"batch": [min,opt,max], ...}`` if any."""
        value = self.export_info.get("dynamic")
        return value if isinstance(value, dict) and value else None

    @property
    def io_kind(self) -> str | None:
        value = self.export_info.get("io")
        return value if value in ("frames", "raw") else None

    def input_named(self, name: str) -> TensorFacts | None:
        return next((t for t in self.inputs if t.name == name), None)


def _tensor_facts(value_info: Any) -> TensorFacts:
    ttype = value_info.type.tensor_type
    dims: list[int | str] = []
    for dim in ttype.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or "?")
    return TensorFacts(value_info.name, tuple(dims), ELEM_TYPES.get(ttype.elem_type, f"onnx-type-{ttype.elem_type}"))


def facts_from_model(model: Any, path: Path, sha256: str) -> OnnxFacts:
    """Facts from an already loaded ModelProto (weights may be external and unloaded)."""
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    inputs = tuple(_tensor_facts(vi) for vi in graph.input if vi.name not in initializer_names)
    outputs = tuple(_tensor_facts(vi) for vi in graph.output)
    op_types = frozenset(node.op_type for node in graph.node)
    init_dtypes = {init.name: ELEM_TYPES.get(init.data_type, "?") for init in graph.initializer}
    # Follow Identity/DequantizeLinear one step so shared or quantized weights count too.
    producers = {out: node for node in graph.node for out in node.output}
    weight_dtypes = set()
    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
            name = node.input[1]
            seen = 0
            while name not in init_dtypes and name in producers and seen < 4:
                producer = producers[name]
                if producer.op_type == "Constant":
                    break
                name = producer.input[0] if producer.input else name
                seen += 1
            if name in init_dtypes:
                weight_dtypes.add(init_dtypes[name])
    padded = []
    for node in graph.node:
        if node.op_type == "ConvTranspose":
            pads = next((list(a.ints) for a in node.attribute if a.name == "pads"), [])
            if any(p != 0 for p in pads):
                padded.append(node.name or node.output[0])
    opset = 0
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            opset = int(entry.version)
    info, export = parse_metadata_props({p.key: p.value for p in model.metadata_props}, path)
    return OnnxFacts(
        path=path, sha256=sha256, opset=opset, inputs=inputs, outputs=outputs, op_types=op_types,
        has_qdq=bool(op_types & set(QDQ_OPS)), float_weight_dtypes=frozenset(weight_dtypes - {"int8", "uint8"}),
        padded_deconvs=tuple(padded), model_info=info.to_dict() if info else None,
        export_info=export.to_dict() if export else {},
    )


def check_segmentation_graph(facts: OnnxFacts) -> None:
    """Refuse a graph no fcn-edge runtime could run, before planning or building an engine for it.

    fcn-edge runs models with one image input (``N,H,W,3`` frames or ``N,3,H,W``); an ONNX
    without an fcn-edge description is built from its graph alone, so that much must hold.
    An ONNX *with* a description must have the inputs and outputs it names: a description
    copied onto another graph would give the engine's sidecar wrong classes and I/O.
    """
    path = facts.path
    ins = ", ".join(f"'{t.name}' {t.dtype} {list(t.shape)}" for t in facts.inputs) or "none"
    if len(facts.inputs) != 1 or len(facts.inputs[0].shape) != 4 or not facts.outputs:
        raise ArtifactError(f"{path} is not an image segmentation model fcn-edge can run (inputs: {ins}; outputs: "
                            f"{', '.join(repr(t.name) for t in facts.outputs) or 'none'}): fcn-edge builds engines for "
                            "models with one 4-D image input; make one with fcn-edge export")
    described_input = facts.export_info.get("input")
    described_outputs = facts.export_info.get("outputs")
    actual_outputs = [t.name for t in facts.outputs]
    if described_input is not None and (described_input != facts.inputs[0].name
                                        or list(described_outputs or []) != actual_outputs):
        raise ArtifactError(f"{path}'s fcn-edge description names input '{described_input}' and outputs "
                            f"{list(described_outputs or [])} but the graph has {ins} and outputs {actual_outputs}: "
                            "the description does not belong to this graph; re-export it with fcn-edge export")


def load_onnx(path: "str | Path", *, load_weights: bool = True) -> Any:
    """onnx.load with our errors: a missing, empty or corrupt file is one sentence."""
    onnx = require("onnx", purpose="to read .onnx models")
    path = require_file(path, "ONNX model", ArtifactError)
    # TensorRT's parser reads the external data itself later: its locations are checked now either way.
    check_onnx_file_external_data(path)
    try:
        return onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many kinds
        raise ArtifactError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]}); re-export it with fcn-edge export") from exc


def read_onnx_facts(path: "str | Path") -> OnnxFacts:
    """Read the facts of the ONNX at ``path`` (without loading external weight files)."""
    path = Path(path)
    model = load_onnx(path, load_weights=False)
    return facts_from_model(model, path, sha256_file(path))
