"""Reading the self-description of an exported ONNX model (``metadata_props``).

The contract (DEVELOPING.md, "Contracts between stages"): key ``fcn_edge.model`` holds
``ModelInfo.to_json()``; key ``fcn_edge.export`` holds the export facts (``io``,
``input``, ``outputs``, ``size``, ``batch``, ``dynamic``, ``precision``, ...).  This
reader tolerates missing keys and files from other tools: whatever is absent is filled
from the graph itself (tensor names, dtypes, shapes) or from VOC defaults, with a
warning, so any segmentation ONNX with a uint8 NHWC input still runs.
(The exporter owns the writer; point this reader at its reader once it lands.)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fcn_edge.errors import ArtifactError
from fcn_edge.modelinfo import ModelInfo

log = logging.getLogger(__name__)

MODEL_KEY = "fcn_edge.model"
EXPORT_KEY = "fcn_edge.export"


@dataclass
class ExportFacts:
    """The ``fcn_edge.export`` block, every field optional."""

    io: str | None = None
    input: str | None = None
    outputs: list[str] = field(default_factory=list)
    size: tuple[int, int] | None = None
    batch: int | None = None
    dynamic: dict[str, list[int]] | None = None
    precision: str | None = None
    opset: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExportFacts":
        facts = cls(raw=dict(data))
        io = data.get("io")
        facts.io = io if io in ("frames", "raw") else None
        facts.input = data.get("input") if isinstance(data.get("input"), str) else None
        outputs = data.get("outputs")
        if isinstance(outputs, (list, tuple)):
            facts.outputs = [str(o) for o in outputs]
        facts.size = _pair(data.get("size"))
        batch = data.get("batch")
        facts.batch = int(batch) if isinstance(batch, (int, float)) and not isinstance(batch, bool) else None
        dynamic = data.get("dynamic")
        if isinstance(dynamic, dict):
            facts.dynamic = {str(k): [int(x) for x in v] for k, v in dynamic.items()
                             if isinstance(v, (list, tuple)) and len(v) == 3}
        facts.precision = data.get("precision") if isinstance(data.get("precision"), str) else None
        opset = data.get("opset")
        facts.opset = int(opset) if isinstance(opset, int) else None
        return facts

    def dynamic_range(self, axis: str) -> tuple[int, int, int] | None:
        """``(min, opt, max)`` of a dynamic axis (``batch``, ``height``, ``width``), if declared."""
        if not self.dynamic or axis not in self.dynamic:
            return None
        lo, opt, hi = self.dynamic[axis]
        return int(lo), int(opt), int(hi)


@dataclass
class OnnxDescription:
    """What the metadata says: the model (if described) and the export facts."""

    info: ModelInfo | None
    export: ExportFacts
    props: dict[str, str]


def describe_from_props(props: Mapping[str, str], where: str | Path = "model") -> OnnxDescription:
    """Parse metadata_props (a ``{key: value}`` mapping) leniently.

    A present but malformed ``fcn_edge.model`` is an error (the file claims to describe
    itself and does not); absent keys are not.
    """
    props = {str(k): str(v) for k, v in props.items()}
    info = None
    if MODEL_KEY in props:
        try:
            info = ModelInfo.from_json(props[MODEL_KEY])
        except ArtifactError as exc:
            raise ArtifactError(f"{where}: its '{MODEL_KEY}' metadata is invalid ({exc}); re-export it") from exc
    export = ExportFacts()
    if EXPORT_KEY in props:
        try:
            data = json.loads(props[EXPORT_KEY])
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{where}: its '{EXPORT_KEY}' metadata is not valid JSON ({exc}); re-export it") from exc
        if isinstance(data, dict):
            export = ExportFacts.from_dict(data)
    return OnnxDescription(info, export, props)


def read_onnx_props(path: str | Path) -> dict[str, str]:
    """metadata_props of an ONNX file, read with ``onnx`` without loading external weights."""
    from fcn_edge.lazy import require

    onnx = require("onnx", purpose="to read ONNX metadata")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file for the user
        raise ArtifactError(f"{path} is not a readable ONNX file ({type(exc).__name__}); re-export it") from exc
    return {p.key: p.value for p in model.metadata_props}


def default_info(num_classes: int | None, where: str | Path) -> ModelInfo:
    """A stand-in description for models that carry none (VOC names and palette)."""
    log.warning("%s carries no fcn-edge model description: using %s class names and the VOC palette",
                where, "VOC" if num_classes in (None, 21) else f"{num_classes} generic")
    return ModelInfo(num_classes=num_classes or 21)


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return int(value[0]), int(value[1])
    return None
