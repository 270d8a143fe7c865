"""The export facts and the ONNX ``metadata_props`` every later stage reads.

Contract (DEVELOPING.md, "Contracts between stages"): an fcn-edge ONNX carries

* ``fcn_edge.model``  -- :meth:`ModelInfo.to_json` (arch, classes, palette, preprocessing, ...)
* ``fcn_edge.export`` -- :class:`ExportFacts` as JSON (I/O names, shapes, dtypes, dynamic
  ranges, opset, geometry, precision, source checkpoint hash, fcn-edge version, and
  ``calibration`` once ``fcn-edge calibrate`` has run)
* plain keys anyone can read in Netron or ``onnx.load(...).metadata_props``:
  ``fcn_edge.version``, ``fcn_edge.arch``, ``fcn_edge.num_classes``,
  ``fcn_edge.class_names`` (JSON list), ``fcn_edge.palette`` (JSON list of RGB),
  ``fcn_edge.geometry``, ``fcn_edge.io``, ``fcn_edge.input``, ``fcn_edge.outputs``,
  ``fcn_edge.preprocessing``, ``fcn_edge.precision``, ``fcn_edge.source``.

Everything here needs neither onnx nor torch (see :mod:`.protowire`), so the runtime,
``fcn-edge info`` and the engine builder read it on a device; the one writer that needs an
``onnx.ModelProto`` (:func:`fcn_edge.export.metadata.apply_metadata`) lives in the build half.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fcn_edge import __version__
from fcn_edge.errors import ArtifactError
from fcn_edge.artifacts.protowire import OnnxHeader, WireError, read_header
from fcn_edge.artifacts.modelinfo import ModelInfo

MODEL_KEY = "fcn_edge.model"
EXPORT_KEY = "fcn_edge.export"
KEY_PREFIX = "fcn_edge."
FACTS_FORMAT_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8-qdq")


@dataclass
class ExportFacts:
    """How an ONNX file was exported: everything a later stage needs besides :class:`ModelInfo`.

    The first block is the contract's minimum; the rest are additions later stages
    may use.  Unknown keys found in a file are kept in ``extra`` and written back, so
    an older fcn-edge does not drop what a newer one recorded.
    """

    io: str                                   # "frames" | "raw"
    input: str                                # "frames" | "input"
    outputs: list[str]                        # names in graph order
    size: tuple[int, int]                     # (H, W) of the optimal / static shape
    batch: int | None                         # static batch, None when batch is dynamic
    dynamic: dict[str, list[int]] | None      # None, or {"batch"|"height"|"width": [min, opt, max]}
    opset: int
    geometry: str                             # "paper" | "aligned"
    precision: str = "fp32"                   # "fp32" | "fp16" | "int8-qdq"
    source_sha256: str | None = None          # of the checkpoint file exported
    source_name: str | None = None            # its file name
    fcn_edge_version: str = __version__
    # --- additions
    format_version: int = FACTS_FORMAT_VERSION
    input_dtype: str = ""                     # "uint8" (frames) | "float32" (raw); "" -> from io
    input_layout: str = ""                    # "NHWC" (frames) | "NCHW" (raw); "" -> from io
    input_channel_order: str = "BGR"          # channel order of the input tensor
    output_dtypes: dict[str, str] = field(default_factory=dict)   # name -> "uint8" | "int32" | "float16" | "float32"
    confidence_scale: float | None = None     # probability = stored confidence * scale (1/255 for uint8)
    weights_dtype: str = "float32"            # "float16" with --fp16-weights (Cast to float32 in the graph)
    exporter: str = ""                        # e.g. "torch.onnx dynamo (torch 2.13.0)"
    created_utc: str = ""
    verification: dict[str, Any] | None = None  # figures of the ONNX Runtime vs PyTorch check, None if skipped
    calibration: dict[str, Any] | None = None   # added by fcn-edge calibrate
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.size, (str, bytes)) or len(self.size) != 2:
            raise ArtifactError(f"export facts: size must be [H, W], got {self.size!r}")
        self.size = (_whole(self.size[0], "size"), _whole(self.size[1], "size"))
        if isinstance(self.outputs, (str, bytes)) or not self.outputs or \
                not all(isinstance(name, str) and name for name in self.outputs):
            raise ArtifactError(f"export facts: outputs must be a list of tensor names, got {self.outputs!r}")
        self.outputs = list(self.outputs)
        if self.io not in ("frames", "raw"):
            raise ArtifactError(f"export facts: io must be frames or raw, got {self.io!r}")
        for name in ("input", "geometry", "precision", "input_dtype", "input_layout", "input_channel_order",
                     "weights_dtype", "exporter", "created_utc", "fcn_edge_version"):
            if not isinstance(getattr(self, name), str):
                raise ArtifactError(f"export facts: {name} must be text, got {getattr(self, name)!r}")
        if not self.input:
            raise ArtifactError("export facts: input names no tensor")
        self.opset = _whole(self.opset, "opset", low=1, high=1000)
        if self.batch is not None:
            self.batch = _whole(self.batch, "batch")
        if self.dynamic is not None:
            if not isinstance(self.dynamic, dict):
                raise ArtifactError(f"export facts: dynamic must be null or a mapping, got {self.dynamic!r}")
            for axis, values in self.dynamic.items():
                if axis not in ("batch", "height", "width") or isinstance(values, (str, bytes)) or \
                        not isinstance(values, (list, tuple)) or len(values) != 3:
                    raise ArtifactError(f"export facts: dynamic {axis!r} must be [min, opt, max], got {values!r}")
                low, opt, high = (_whole(v, f"dynamic {axis}") for v in values)
                if not low <= opt <= high:
                    raise ArtifactError(f"export facts: dynamic {axis} needs min <= opt <= max, got {values!r}")
                self.dynamic[axis] = [low, opt, high]
        if not isinstance(self.output_dtypes, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.output_dtypes.items()):
            raise ArtifactError("export facts: output_dtypes must map output names to dtype names")
        if self.confidence_scale is not None:
            if isinstance(self.confidence_scale, bool) or not isinstance(self.confidence_scale, (int, float)) or \
                    not math.isfinite(self.confidence_scale) or self.confidence_scale <= 0:
                raise ArtifactError(f"export facts: confidence_scale must be a positive number, "
                                    f"got {self.confidence_scale!r}")
            self.confidence_scale = float(self.confidence_scale)
        for name in ("verification", "calibration"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise ArtifactError(f"export facts: {name} must be null or a mapping")
        frames = self.io == "frames"
        self.input_dtype = self.input_dtype or ("uint8" if frames else "float32")
        self.input_layout = self.input_layout or ("NHWC" if frames else "NCHW")

    # ------------------------------------------------------------------ shapes
    @property
    def is_dynamic(self) -> bool:
        return bool(self.dynamic)

    def input_shape(self) -> list[int | str]:
        """The input's shape with ``"batch"``/``"height"``/``"width"`` for dynamic axes."""
        dyn = self.dynamic or {}
        n = "batch" if "batch" in dyn and _is_range(dyn["batch"]) else (self.batch or 1)
        h = "height" if "height" in dyn and _is_range(dyn["height"]) else self.size[0]
        w = "width" if "width" in dyn and _is_range(dyn["width"]) else self.size[1]
        return [n, h, w, 3] if self.input_layout == "NHWC" else [n, 3, h, w]

    def profile(self, which: str) -> tuple[int, int, int]:
        """``(N, H, W)`` of the ``"min"``, ``"opt"`` or ``"max"`` shape (static axes repeat)."""
        index = {"min": 0, "opt": 1, "max": 2}[which]
        dyn = self.dynamic or {}
        n = dyn["batch"][index] if "batch" in dyn else (self.batch or 1)
        h = dyn["height"][index] if "height" in dyn else self.size[0]
        w = dyn["width"][index] if "width" in dyn else self.size[1]
        return int(n), int(h), int(w)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data["size"] = list(self.size)
        data.update(self.extra)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExportFacts":
        if not isinstance(data, dict):
            raise ArtifactError("export facts are not a mapping")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        missing = [k for k in ("io", "input", "outputs", "size", "opset", "geometry") if k not in kwargs]
        if missing:
            raise ArtifactError(f"export facts lack {', '.join(missing)}")
        version = kwargs.get("format_version", 1)
        if not isinstance(version, int) or version > FACTS_FORMAT_VERSION:
            raise ArtifactError(f"export facts have format version {version!r}; this fcn-edge ({__version__}) "
                                f"reads up to {FACTS_FORMAT_VERSION}: upgrade fcn-edge")
        kwargs.setdefault("batch", None)
        kwargs.setdefault("dynamic", None)
        try:
            return cls(**kwargs, extra=extra)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as exc:
            raise ArtifactError(f"invalid export facts: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> "ExportFacts":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"export facts are not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "ExportFacts":
        return dataclasses.replace(self, **changes)


def _whole(value: Any, what: str, low: int = 1, high: int = 65536) -> int:
    """A whole number from a description read from a file, within sane bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ArtifactError(f"export facts: {what} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise ArtifactError(f"export facts: {what} must be {low} to {high}, got {value}")
    return int(value)


def _is_range(values: list[int]) -> bool:
    return len(set(values)) > 1


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- writing
def metadata_entries(info: ModelInfo, facts: ExportFacts) -> dict[str, str]:
    """Every ``fcn_edge.*`` key/value to store in ``metadata_props`` (insertion-ordered)."""
    pre = info.preprocessing
    dims = ",".join(str(d) for d in facts.input_shape())
    in_desc = f"{facts.input} {facts.input_dtype} [{dims}] {facts.input_layout}"
    if facts.io == "frames":
        in_desc += f", {facts.input_channel_order} frames, 0-255"
    else:
        in_desc += f", {pre.model_channel_order}, normalised"
    out_desc = []
    for name in facts.outputs:
        dtype = facts.output_dtypes.get(name, "?")
        text = f"{name} {dtype}"
        if name == "confidence" and facts.confidence_scale not in (None, 1.0):
            text += f" (probability = value * {facts.confidence_scale:.8g})"
        out_desc.append(text)
    swap = f"{facts.input_channel_order} -> {pre.model_channel_order}, " if facts.io == "frames" and \
        facts.input_channel_order != pre.model_channel_order else ""
    return {
        MODEL_KEY: info.to_json(),
        EXPORT_KEY: facts.to_json(),
        "fcn_edge.version": facts.fcn_edge_version,
        "fcn_edge.arch": info.arch,
        "fcn_edge.num_classes": str(info.num_classes),
        "fcn_edge.class_names": json.dumps(info.class_names),
        "fcn_edge.palette": json.dumps([list(c) for c in info.palette]),
        "fcn_edge.geometry": facts.geometry,
        "fcn_edge.io": facts.io,
        "fcn_edge.input": in_desc,
        "fcn_edge.outputs": "; ".join(out_desc),
        "fcn_edge.preprocessing": (f"{swap}(pixel * {pre.scale:.8g} - mean {list(pre.mean)}) / std {list(pre.std)}"
                                   + (" (done in the graph)" if facts.io == "frames" else " (done by the caller)")),
        "fcn_edge.precision": facts.precision,
        "fcn_edge.source": f"{facts.source_name or '?'} sha256:{facts.source_sha256 or '?'}",
    }


# ---------------------------------------------------------------------------- reading
def read_onnx_header(path: str | os.PathLike) -> OnnxHeader:
    """The header of an ONNX file (no weights loaded) or a one-sentence :class:`ArtifactError`."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"ONNX file {path} does not exist")
    if path.is_dir():
        raise ArtifactError(f"{path} is a folder, not an ONNX file")
    try:
        header = read_header(path)
    except (WireError, IndexError):
        raise ArtifactError(f"{path} is not an ONNX model{_what_it_is(path)}") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not header.has_graph or header.ir_version is None:
        raise ArtifactError(f"{path} is not an ONNX model{_what_it_is(path)}")
    check_external_data(path, header)
    return header


def check_external_data(path: str | os.PathLike, header: OnnxHeader, *, require_present: bool = False) -> None:
    """Refuse an ONNX whose external-data locations reach outside its own folder.

    Weights of a large ONNX may live in files beside it (``TensorProto.external_data``
    ``location``, relative to the model's folder).  A file from elsewhere could name
    ``../../etc/shadow``, an absolute path or a symbolic link out of the folder and make
    a reader load (and, through outputs, leak) any file this user can read.  Recent onnx
    and ONNX Runtime releases refuse that too; this check runs first, for every reader
    (including the header-only ones and older library versions), with one sentence.
    ``require_present``: also refuse when a listed file is missing (loaders need them).
    """
    import re
    from pathlib import PurePosixPath, PureWindowsPath

    path = Path(path)
    folder = path.parent.resolve()
    for tensor, location in header.external_data:
        where = f"{path}: tensor {tensor!r} keeps its data in an external file"
        if not location:
            raise ArtifactError(f"{where} but names no location; re-export the model")
        if "\x00" in location:
            raise ArtifactError(f"{where} whose name holds a NUL byte; refused (re-export the model)")
        if (PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
                or location.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", location)):
            raise ArtifactError(f"{where} at the absolute path {location!r}; external data must sit in the "
                                "model's folder, so this file is refused (re-export it, or move the data beside it)")
        if ".." in PurePosixPath(location.replace("\\", "/")).parts:
            raise ArtifactError(f"{where} at {location!r}, outside the model's folder; refused (external data must "
                                "sit in the model's folder)")
        target = path.parent / location
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError, ValueError):
            raise ArtifactError(f"{where} at {location!r}, which cannot be resolved; refused") from None
        if resolved != folder and folder not in resolved.parents:
            raise ArtifactError(f"{where} at {location!r}, a link to {resolved} outside the model's folder; refused")
        if require_present and not target.is_file():
            raise ArtifactError(f"{where} at {location!r}, which is missing; copy {location} next to {path.name}")


def check_onnx_file_external_data(path: str | os.PathLike, *, require_present: bool = True) -> None:
    """:func:`check_external_data` for a loader about to hand ``path`` to onnx, ONNX Runtime or TensorRT.

    A file whose header cannot be parsed is left to the loader, whose own error says
    what is wrong with it; only the external-data locations are judged here.
    """
    try:
        header = read_header(path)
    except (WireError, IndexError, OSError, ValueError):
        return
    check_external_data(path, header, require_present=require_present)


def _what_it_is(path: Path) -> str:
    """The end of the 'not an ONNX model' sentence: what the file seems to be and what to do."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError:
        magic = b""
    if magic.startswith(b"PK"):
        return f" but a PyTorch checkpoint (zip); export it first: fcn-edge export {path}"
    if magic.startswith(b"\x80"):
        return f" but a pickle (old-style PyTorch file?); export it first: fcn-edge export {path}"
    if len(magic) == 0:
        return " (it is empty)"
    return " (it is corrupt, truncated or another format); give the .onnx written by fcn-edge export"


def parse_metadata_props(props: Mapping[str, str], where: str | os.PathLike = "ONNX model"
                         ) -> tuple[ModelInfo | None, ExportFacts | None]:
    """``(ModelInfo, ExportFacts)`` from a ``metadata_props`` mapping: the one parser of our keys.

    Every reader goes through here: :func:`read_onnx_metadata` (from the file header),
    the runtime (from ONNX Runtime's ``custom_metadata_map``) and build-engine (from a
    loaded ``ModelProto``).  ``(None, None)`` when the model carries neither key (an
    ONNX from another tool: each caller decides what it can do without a description);
    :class:`ArtifactError` naming ``where`` when only one key is there, or either is
    malformed or newer than this fcn-edge reads (the file claims to describe itself and
    does not: trusting half of it would run with wrong classes or preprocessing).
    """
    has_model, has_export = MODEL_KEY in props, EXPORT_KEY in props
    if not has_model and not has_export:
        return None, None
    if not (has_model and has_export):
        present, missing = (MODEL_KEY, EXPORT_KEY) if has_model else (EXPORT_KEY, MODEL_KEY)
        raise ArtifactError(f"{where} has '{present}' metadata but no '{missing}': its fcn-edge description is "
                            "incomplete; re-export it with fcn-edge export")
    try:
        info = ModelInfo.from_json(props[MODEL_KEY])
        facts = ExportFacts.from_json(props[EXPORT_KEY])
    except ArtifactError as exc:
        raise ArtifactError(f"{where}: {exc}; re-export it with fcn-edge export") from None
    return info, facts


def read_onnx_metadata(path: str | os.PathLike) -> tuple[ModelInfo, ExportFacts]:
    """``(ModelInfo, ExportFacts)`` of an fcn-edge ONNX, read without loading its weights.

    Raises :class:`ArtifactError` with what to do when the file is missing, not ONNX,
    an ONNX that fcn-edge did not write (with a hint when it looks like a plain FCN),
    or carries metadata this version cannot read.
    """
    path = Path(path)
    header = read_onnx_header(path)
    info, facts = parse_metadata_props(header.metadata, path)
    if info is None or facts is None:
        raise ArtifactError(f"{path} is not an fcn-edge ONNX (no {MODEL_KEY} metadata){_foreign_hint(header)}")
    return info, facts


def _foreign_hint(header: OnnxHeader) -> str:
    ins, outs = header.inputs, header.outputs
    if (len(ins) == 1 and outs and ins[0].shape and len(ins[0].shape) == 4 and ins[0].shape[1] == 3
            and outs[0].shape and len(outs[0].shape) == 4):
        return (f": it looks like a plain segmentation network (input '{ins[0].name}' {ins[0].dtype} "
                f"{_dims(ins[0].shape)} -> '{outs[0].name}' {_dims(outs[0].shape)}, "
                f"producer {header.producer_name or 'unknown'}) without class names or preprocessing; "
                "export its PyTorch weights with `fcn-edge export WEIGHTS.pt` (a bare state_dict of the FCN port works)")
    return "; run fcn-edge export first to make one from a checkpoint"


def _dims(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"
