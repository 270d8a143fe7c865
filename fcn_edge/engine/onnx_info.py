"""What build-engine needs to know about an ONNX file, read once with the onnx package.

The metadata contract (DEVELOPING.md): ``metadata_props`` key ``fcn_edge.model`` holds
``ModelInfo.to_json()`` and ``fcn_edge.export`` the export facts (io, input, outputs,
size, batch, dynamic, opset, geometry, precision, ...).  This reader is deliberately
tolerant: an ONNX made by another tool, or by an older/newer fcn-edge, has missing or
extra keys, and build-engine still works from the graph itself.  (The exporter has its
own reader; the lead will wire the two together.)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_edge.errors import ArtifactError
from fcn_edge.fileio import require_file, sha256_file
from fcn_edge.lazy import require

log = logging.getLogger(__name__)

MODEL_KEY = "fcn_edge.model"
EXPORT_KEY = "fcn_edge.export"

# ONNX TensorProto data type numbers -> our dtype names (numpy's spelling).
ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}
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
    model_info: dict[str, Any] | None = None     # fcn_edge.model (ModelInfo.to_dict()) if present
    export_info: dict[str, Any] = field(default_factory=dict)  # fcn_edge.export if present

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


def read_fcn_edge_metadata(model: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(``fcn_edge.model`` dict or None, ``fcn_edge.export`` dict or {}) from a ModelProto.

    Missing keys give None/{}; a key whose value is not a JSON object is ignored with a
    warning (the graph is still usable, only the description is lost).
    """
    props = {p.key: p.value for p in getattr(model, "metadata_props", [])}
    parsed: dict[str, Any] = {}
    for key in (MODEL_KEY, EXPORT_KEY):
        if key not in props:
            continue
        try:
            value = json.loads(props[key])
        except (TypeError, ValueError):
            log.warning("ignoring ONNX metadata %s: not valid JSON", key)
            continue
        if isinstance(value, dict):
            parsed[key] = value
        else:
            log.warning("ignoring ONNX metadata %s: not a JSON object", key)
    return parsed.get(MODEL_KEY), parsed.get(EXPORT_KEY, {})


def _tensor_facts(value_info: Any) -> TensorFacts:
    ttype = value_info.type.tensor_type
    dims: list[int | str] = []
    for dim in ttype.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or "?")
    return TensorFacts(value_info.name, tuple(dims), ONNX_DTYPES.get(ttype.elem_type, f"onnx-type-{ttype.elem_type}"))


def facts_from_model(model: Any, path: Path, sha256: str) -> OnnxFacts:
    """Facts from an already loaded ModelProto (weights may be external and unloaded)."""
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    inputs = tuple(_tensor_facts(vi) for vi in graph.input if vi.name not in initializer_names)
    outputs = tuple(_tensor_facts(vi) for vi in graph.output)
    op_types = frozenset(node.op_type for node in graph.node)
    init_dtypes = {init.name: ONNX_DTYPES.get(init.data_type, "?") for init in graph.initializer}
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
    model_info, export_info = read_fcn_edge_metadata(model)
    return OnnxFacts(
        path=path, sha256=sha256, opset=opset, inputs=inputs, outputs=outputs, op_types=op_types,
        has_qdq=bool(op_types & set(QDQ_OPS)), float_weight_dtypes=frozenset(weight_dtypes - {"int8", "uint8"}),
        padded_deconvs=tuple(padded), model_info=model_info, export_info=export_info,
    )


def load_onnx(path: "str | Path", *, load_weights: bool = True) -> Any:
    """onnx.load with our errors: a missing, empty or corrupt file is one sentence."""
    onnx = require("onnx", purpose="to read .onnx models")
    path = require_file(path, "ONNX model", ArtifactError)
    try:
        return onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many kinds
        raise ArtifactError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]}); re-export it with fcn-edge export") from exc


def read_onnx_facts(path: "str | Path") -> OnnxFacts:
    """Read the facts of the ONNX at ``path`` (without loading external weight files)."""
    path = Path(path)
    model = load_onnx(path, load_weights=False)
    return facts_from_model(model, path, sha256_file(path))
