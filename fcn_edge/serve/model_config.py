"""Triton model configurations derived from the model itself, for ``serve`` and ``triton-repo``.

Both commands answer the same questions from the artifact's own facts (tensor names,
dtypes, shapes, batch range): what Triton's ``max_batch_size`` is, which batch sizes
the dynamic batcher should prefer, and what the model's self-description published in
``parameters`` is (``fcn_edge.model`` = ModelInfo JSON, ``fcn_edge.export`` = export
facts JSON; read back by the ``triton://`` client).

``config.pbtxt`` files are built as Triton's own ``ModelConfig`` protobuf (the
``model_config_pb2`` module shipped in ``tritonclient``) and checked by parsing the
written text back with ``google.protobuf.text_format`` and comparing messages, so a
field name or enum Triton does not know fails here rather than in the container.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import require
from fcn_edge.runtime.base import IOSpec
from fcn_edge.runtime.triton_backend import EXPORT_PARAM, MODEL_PARAM, VERSION_PARAM, triton_dtype
DEFAULT_DYNAMIC_MAX = 8  # Triton max_batch_size for a dynamic-batch model that states no maximum


class ModelConfigError(FcnEdgeError):
    """A Triton model configuration cannot be built or does not parse."""


@dataclass(frozen=True)
class TensorConfig:
    """One model input/output as Triton sees it: ``dims`` exclude the batch axis when batching."""

    name: str
    dtype: str              # numpy name
    dims: tuple[int, ...]   # -1 for variable

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "data_type": triton_dtype(self.dtype), "dims": [int(d) for d in self.dims]}


@dataclass(frozen=True)
class BatchPlan:
    """How requests are batched.

    ``max_batch_size``: Triton's (0 = Triton does not batch; the tensors' first dim is
    the model's fixed batch).  ``preferred``: preferred batch sizes for the dynamic
    batcher.  For ``fcn-edge serve`` (our code between Triton and the model):
    ``chunk`` is the most frames one runner call takes and ``pad_to`` the fixed batch
    a static model needs (partial batches are padded and the padding dropped).
    """

    max_batch_size: int
    preferred: tuple[int, ...] = ()
    chunk: int | None = None
    pad_to: int | None = None
    notes: tuple[str, ...] = ()


def plan_serve_batching(io: IOSpec, requested: int | None) -> BatchPlan:
    """Batching for ``fcn-edge serve``: Triton batches up to ``requested`` (default: what the model takes)."""
    if requested is not None and requested < 1:
        raise ModelConfigError(f"--max-batch must be at least 1, got {requested}")
    notes: list[str] = []
    if io.batch is None:
        limit = io.max_batch
        size = requested or limit or DEFAULT_DYNAMIC_MAX
        chunk = None
        if limit is not None and size > limit:
            chunk = limit
            notes.append(f"the model takes at most {limit} frames per call: Triton batches of up to {size} run as "
                         f"{-(-size // limit)} calls")
        return BatchPlan(size, (), chunk, None, tuple(notes))
    fixed = int(io.batch)
    size = requested or fixed
    if fixed == 1 and size > 1:
        notes.append("the model has a static batch of 1: Triton's batches run one frame after another "
                     "(export with --dynamic batch to compute them together)")
    elif fixed == 1:
        notes.append("the model has a static batch of 1, so Triton does not batch requests "
                     "(export with --dynamic batch, then pass --max-batch N)")
    elif size % fixed:
        notes.append(f"the model has a static batch of {fixed}: partial batches are padded to {fixed}")
    return BatchPlan(size, (), fixed, fixed, tuple(notes))


def plan_repo_batching(batch_axis: tuple[int, int, int] | None, fixed_batch: int | None,
                       requested: int | None) -> BatchPlan:
    """Batching for a repository served by Triton's own ONNX Runtime / TensorRT backends.

    ``batch_axis`` is the model's dynamic batch range ``(min, opt, max)`` or None;
    ``fixed_batch`` its static batch.  Only a dynamic batch axis lets Triton batch; its
    ``opt`` (the TensorRT profile's fastest shape) and ``max`` become preferred sizes.
    """
    if requested is not None and requested < 1:
        raise ModelConfigError(f"--max-batch must be at least 1, got {requested}")
    if batch_axis is None:
        notes = ()
        if requested and requested > 1:
            notes = (f"the model has a static batch of {fixed_batch or 1}: Triton cannot batch it, --max-batch "
                     f"{requested} is ignored (export with --dynamic batch)",)
        return BatchPlan(0, (), None, None, notes)
    low, opt, high = batch_axis
    if low > 1:
        raise ModelConfigError(f"the model's batch range starts at {low}; Triton needs batches from 1: re-export with "
                               "--min-shape 1xHxW")
    size = requested or high
    notes: tuple[str, ...] = ()
    if size > high:
        raise ModelConfigError(f"--max-batch {size} is above the model's largest batch {high}: pass at most {high} or "
                               "re-export with a larger --max-shape")
    preferred = tuple(sorted({b for b in (opt, size) if 1 < b <= size}))
    return BatchPlan(size, preferred, None, None, notes)


@dataclass
class ConfigSpec:
    """Everything that goes into one ``config.pbtxt``."""

    name: str
    platform: str                           # "onnxruntime_onnx" | "tensorrt_plan"
    inputs: list[TensorConfig]
    outputs: list[TensorConfig]
    batch: BatchPlan
    max_queue_delay_us: int = 2000
    instances: int = 1
    instance_kind: str = "KIND_GPU"         # KIND_GPU | KIND_CPU | KIND_AUTO
    gpus: tuple[int, ...] = ()
    versions: int = 1                       # version_policy latest { num_versions }
    parameters: dict[str, str] = field(default_factory=dict)
    ort_tensorrt: str | None = None         # None | "FP32" | "FP16": ORT's TensorRT execution accelerator
    default_model_filename: str | None = None

    def to_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": self.name, "platform": self.platform, "max_batch_size": self.batch.max_batch_size,
            "input": [t.to_dict() for t in self.inputs], "output": [t.to_dict() for t in self.outputs],
            "version_policy": {"latest": {"num_versions": self.versions}},
            "instance_group": [{"count": self.instances, "kind": self.instance_kind,
                                **({"gpus": list(self.gpus)} if self.gpus else {})}],
        }
        if self.batch.max_batch_size > 0:
            batching: dict[str, Any] = {"max_queue_delay_microseconds": int(self.max_queue_delay_us)}
            if self.batch.preferred:
                batching["preferred_batch_size"] = list(self.batch.preferred)
            config["dynamic_batching"] = batching
        if self.parameters:
            config["parameters"] = {k: {"string_value": v} for k, v in self.parameters.items()}
        if self.ort_tensorrt:
            config["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": [
                {"name": "tensorrt", "parameters": {"precision_mode": self.ort_tensorrt,
                                                    "max_workspace_size_bytes": str(1 << 30)}}]}}
        if self.default_model_filename:
            config["default_model_filename"] = self.default_model_filename
        return config


def model_parameters(info: Any, export: Mapping[str, Any] | None) -> dict[str, str]:
    """The self-description published in a model config's ``parameters``."""
    from fcn_edge import __version__

    params = {VERSION_PARAM: __version__}
    if info is not None:
        params[MODEL_PARAM] = info.to_json()
    if export:
        params[EXPORT_PARAM] = json.dumps(dict(export), sort_keys=True)
    return params


def _protos():
    pb = require("tritonclient.grpc.model_config_pb2", purpose="to write and check Triton model configurations")
    json_format = require("google.protobuf.json_format")
    text_format = require("google.protobuf.text_format")
    return pb, json_format, text_format


def config_message(spec: ConfigSpec):
    """The ``ModelConfig`` protobuf of a :class:`ConfigSpec` (unknown fields or enum values raise)."""
    pb, json_format, _ = _protos()
    try:
        return json_format.ParseDict(spec.to_dict(), pb.ModelConfig())
    except json_format.ParseError as exc:
        raise ModelConfigError(f"model config for {spec.name!r} is not a valid Triton ModelConfig: {exc}") from None


def render_config(spec: ConfigSpec) -> str:
    """``config.pbtxt`` text, with ``max_batch_size: 0`` spelled out (Triton would otherwise auto-complete it)."""
    _, _, text_format = _protos()
    message = config_message(spec)
    text = text_format.MessageToString(message)
    if spec.batch.max_batch_size == 0:
        text += "max_batch_size: 0\n"
    return text


def parse_config(text: str, where: str = "config.pbtxt"):
    """Parse ``config.pbtxt`` text with Triton's ``ModelConfig`` protobuf."""
    pb, _, text_format = _protos()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise ModelConfigError(f"{where} does not parse as a Triton ModelConfig: {exc}") from None


def check_config_text(text: str, spec: ConfigSpec, where: str = "config.pbtxt") -> list[str]:
    """Parse the written text and check it says what the model is; returns the problems found."""
    parsed = parse_config(text, where)
    expected = config_message(spec)
    problems = []
    if parsed != expected:
        problems.append(f"{where} parses to a different configuration than the one built")
    pb, _, _ = _protos()
    type_names = {v: k for k, v in pb.DataType.items()}
    if parsed.name != spec.name:
        problems.append(f"{where}: name {parsed.name!r} differs from the model folder {spec.name!r}")
    if parsed.platform != spec.platform:
        problems.append(f"{where}: platform {parsed.platform!r}, expected {spec.platform!r}")
    if parsed.max_batch_size != spec.batch.max_batch_size:
        problems.append(f"{where}: max_batch_size {parsed.max_batch_size}, expected {spec.batch.max_batch_size}")
    for kind, declared, wanted in (("input", parsed.input, spec.inputs), ("output", parsed.output, spec.outputs)):
        got = [(t.name, type_names.get(t.data_type), tuple(t.dims)) for t in declared]
        want = [(t.name, t.to_dict()["data_type"], tuple(t.dims)) for t in wanted]
        if got != want:
            problems.append(f"{where}: {kind}s {got} differ from the model's {want}")
    if spec.batch.max_batch_size > 0 and not parsed.HasField("dynamic_batching"):
        problems.append(f"{where}: batching model without dynamic_batching")
    for key in spec.parameters:
        if parsed.parameters[key].string_value != spec.parameters[key]:
            problems.append(f"{where}: parameter {key} was not written intact")
    return problems


def tensor_configs(names_dtypes_shapes: Sequence[tuple[str, str, Sequence[int | str | None]]],
                   batching: bool) -> list[TensorConfig]:
    """Tensors from ``(name, dtype, full shape)``; symbolic/None dims become -1; batching drops axis 0."""
    out = []
    for name, dtype, shape in names_dtypes_shapes:
        dims = [int(d) if isinstance(d, int) and d > 0 else -1 for d in shape]
        if batching:
            dims = dims[1:]
        out.append(TensorConfig(name, dtype, tuple(dims)))
    return out


__all__ = ["BatchPlan", "ConfigSpec", "TensorConfig", "ModelConfigError", "plan_serve_batching",
           "plan_repo_batching", "model_parameters", "config_message", "render_config", "parse_config",
           "check_config_text", "tensor_configs", "MODEL_PARAM", "EXPORT_PARAM", "VERSION_PARAM"]
