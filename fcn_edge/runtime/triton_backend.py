"""Remote backend: a model served by NVIDIA Triton Inference Server, as ``triton://HOST:PORT/MODEL``.

=====================================  ==========================================
URL                                    protocol
=====================================  ==========================================
``triton://host:8000/fcn8s``           HTTP/REST (``triton+http://`` is the same)
``triton+grpc://host:8001/fcn8s``      gRPC
``triton+https://`` / ``triton+grpcs://``  the same over TLS
``.../fcn8s/2``                        a given model version (default: the server's policy)
``...?timeout=10&stats_interval=1``    network timeout (s); server statistics period (s)
=====================================  ==========================================

A robot's camera loop then runs exactly as with a local model (``fcn-edge run
triton://gpu-box:8000/fcn8s --source csi://0``, ``Segmenter.open("triton://...")``),
with inference on a GPU server that several robots share.

**What the model is.**  Class names, palette and preprocessing travel in the model's
Triton configuration: ``fcn-edge serve`` and ``fcn-edge triton-repo`` put the
:class:`~fcn_edge.artifacts.modelinfo.ModelInfo` JSON in ``parameters["fcn_edge.model"]`` and the
export facts in ``parameters["fcn_edge.export"]`` (read with ``GET
/v2/models/NAME/config``).  The tensors (names, dtypes, dims, ``max_batch_size``) come
from the same configuration, so any Triton segmentation model with one image input
runs too (with VOC names and a warning when it carries no description).

**Where the time goes.**  Each result's ``timings`` (milliseconds) are:

* ``infer`` / ``request``: client wall time of the request, from serialising the
  batch to the decoded outputs (what the caller waits for);
* ``server_queue``: time requests waited in Triton's scheduler queue (dynamic
  batching delay included) and ``server_compute``: Triton's compute input + infer +
  output time for the batch the request ran in (for ``fcn-edge serve`` that is our
  runtime backend's run plus PyTriton's hand-over to it).  Both are averages per
  request over the last statistics window (``stats_interval`` seconds, default 1)
  from Triton's statistics extension, i.e. over *every* client of that model in that
  window: with one client they are its own figures, under load the server's;
* ``network``: ``request - server_queue - server_compute`` (floored at 0):
  transport, HTTP/gRPC handling and (de)serialisation on both sides.

Server figures need the statistics endpoint; where it is closed (PyTriton protects it
by default; ``fcn-edge serve`` opens it) they are left out with a note in
``describe()``.  The runner is not thread-safe (as every runner); each thread that
calls it gets its own client connection, and ``submit()`` keeps up to
``max_in_flight`` requests (default 2) on the wire so capture, network and server
overlap in the stream runner.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.lazy import require
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.runtime.base import (LOGITS, IOSpec, InferenceResult, PendingInference, Runner,
                                   TensorSpec, build_result)

log = logging.getLogger(__name__)

SCHEMES = {"triton": ("http", False), "triton+http": ("http", False), "triton+https": ("http", True),
           "triton+grpc": ("grpc", False), "triton+grpcs": ("grpc", True)}
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
MODEL_PARAM = "fcn_edge.model"
EXPORT_PARAM = "fcn_edge.export"
VERSION_PARAM = "fcn_edge.version"

# Triton's model-config data types <-> numpy
TRITON_TO_NUMPY = {
    "TYPE_BOOL": "bool", "TYPE_UINT8": "uint8", "TYPE_UINT16": "uint16", "TYPE_UINT32": "uint32",
    "TYPE_UINT64": "uint64", "TYPE_INT8": "int8", "TYPE_INT16": "int16", "TYPE_INT32": "int32",
    "TYPE_INT64": "int64", "TYPE_FP16": "float16", "TYPE_FP32": "float32", "TYPE_FP64": "float64",
}
NUMPY_TO_TRITON = {v: k for k, v in TRITON_TO_NUMPY.items()}


class RemoteInferenceError(FcnEdgeError):
    """The Triton server refused or failed a request, or cannot be reached."""


def triton_dtype(np_dtype: Any) -> str:
    """``uint8`` -> ``TYPE_UINT8`` (model-config spelling)."""
    name = np.dtype(np_dtype).name
    if name not in NUMPY_TO_TRITON:
        raise FcnEdgeError(f"Triton has no data type for numpy {name}")
    return NUMPY_TO_TRITON[name]


def wire_dtype(np_dtype: Any) -> str:
    """``uint8`` -> ``UINT8`` (the inference protocol's spelling)."""
    return triton_dtype(np_dtype)[len("TYPE_"):]


# ------------------------------------------------------------------------ URL
@dataclass(frozen=True)
class TritonAddress:
    """A parsed ``triton://`` URL."""

    protocol: str          # "http" | "grpc"
    host: str
    port: int
    model: str
    version: str = ""      # "" = the server's version policy
    ssl: bool = False
    options: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        scheme = {("http", False): "triton", ("http", True): "triton+https", ("grpc", False): "triton+grpc",
                  ("grpc", True): "triton+grpcs"}[(self.protocol, self.ssl)]
        return f"{scheme}://{self.endpoint}/{self.model}" + (f"/{self.version}" if self.version else "")


def parse_triton_url(url: str) -> TritonAddress:
    """``triton[+grpc]://HOST[:PORT]/MODEL[/VERSION][?timeout=S&stats_interval=S]`` -> :class:`TritonAddress`."""
    text = str(url).strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise FcnEdgeError(f"{text}: not a Triton URL; write triton://HOST:PORT/MODEL (HTTP) or "
                           "triton+grpc://HOST:PORT/MODEL (gRPC)")
    protocol, ssl = SCHEMES[scheme]
    if not parts.hostname:
        raise FcnEdgeError(f"{text}: the URL has no host; write e.g. triton://127.0.0.1:8000/fcn8s")
    try:
        port = parts.port or DEFAULT_PORTS[protocol]
    except ValueError:
        raise FcnEdgeError(f"{text}: the port is not a number") from None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments or len(segments) > 2:
        raise FcnEdgeError(f"{text}: name the model after the address, e.g. {scheme}://{parts.netloc}/fcn8s "
                           "(optionally /VERSION)")
    model = segments[0]
    version = segments[1] if len(segments) == 2 else ""
    if version and not version.isdigit():
        raise FcnEdgeError(f"{text}: the model version must be a number, got {version!r}")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(options) - {"timeout", "stats_interval", "max_in_flight"})
    if unknown:
        raise FcnEdgeError(f"{text}: unknown option(s) {', '.join(unknown)}; known: timeout, stats_interval, max_in_flight")
    return TritonAddress(protocol, parts.hostname, int(port), model, version, ssl, options)


# ------------------------------------------------------------------ statistics
@dataclass
class ServerStats:
    """Cumulative statistics of one model version (Triton's statistics extension), in ns.

    ``batch_executions`` maps a batch size to the number of model executions of that
    size: the evidence that the dynamic batcher combined requests.
    """

    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    queue_ns: int = 0
    compute_input_ns: int = 0
    compute_infer_ns: int = 0
    compute_output_ns: int = 0
    inference_count: int = 0
    execution_count: int = 0
    batch_executions: dict[int, int] = field(default_factory=dict)

    @property
    def compute_ns(self) -> int:
        return self.compute_input_ns + self.compute_infer_ns + self.compute_output_ns

    def minus(self, earlier: "ServerStats") -> "ServerStats":
        sizes = set(self.batch_executions) | set(earlier.batch_executions)
        return ServerStats(
            self.success_count - earlier.success_count, self.success_ns - earlier.success_ns,
            self.fail_count - earlier.fail_count, self.queue_ns - earlier.queue_ns,
            self.compute_input_ns - earlier.compute_input_ns, self.compute_infer_ns - earlier.compute_infer_ns,
            self.compute_output_ns - earlier.compute_output_ns, self.inference_count - earlier.inference_count,
            self.execution_count - earlier.execution_count,
            {s: self.batch_executions.get(s, 0) - earlier.batch_executions.get(s, 0) for s in sorted(sizes)
             if self.batch_executions.get(s, 0) - earlier.batch_executions.get(s, 0)})

    def per_request_ms(self) -> dict[str, float]:
        """Average queue / compute / server-total time per successful request (ms); {} without requests."""
        if self.success_count <= 0:
            return {}
        n = self.success_count * 1e6
        return {"server_queue": self.queue_ns / n, "server_compute": self.compute_ns / n,
                "server_total": self.success_ns / n}

    @property
    def mean_batch(self) -> float | None:
        if self.execution_count <= 0:
            return None
        return self.inference_count / self.execution_count

    def to_dict(self) -> dict[str, Any]:
        per = self.per_request_ms()
        return {"requests": self.success_count, "failed": self.fail_count, "inferences": self.inference_count,
                "executions": self.execution_count,
                "mean_batch": round(self.mean_batch, 3) if self.mean_batch is not None else None,
                "batch_executions": {str(k): v for k, v in sorted(self.batch_executions.items())},
                **{f"{k}_ms": round(v, 3) for k, v in per.items()}}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_statistics(data: Mapping[str, Any], model: str, version: str = "") -> ServerStats:
    """Triton's statistics JSON (HTTP, or gRPC's converted with field names kept) -> :class:`ServerStats`.

    gRPC's JSON spells int64 values as strings; both spellings are read.  Versions of
    the model are summed unless ``version`` names one.
    """
    stats = ServerStats()
    for entry in data.get("model_stats", []) or []:
        if entry.get("name") != model or (version and str(entry.get("version")) != str(version)):
            continue
        infer = entry.get("inference_stats", {}) or {}

        def pair(key: str) -> tuple[int, int]:
            item = infer.get(key, {}) or {}
            return _int(item.get("count")), _int(item.get("ns"))

        count, ns = pair("success")
        stats.success_count += count
        stats.success_ns += ns
        stats.fail_count += pair("fail")[0]
        stats.queue_ns += pair("queue")[1]
        stats.compute_input_ns += pair("compute_input")[1]
        stats.compute_infer_ns += pair("compute_infer")[1]
        stats.compute_output_ns += pair("compute_output")[1]
        stats.inference_count += _int(entry.get("inference_count"))
        stats.execution_count += _int(entry.get("execution_count"))
        for batch in entry.get("batch_stats", []) or []:
            size = _int(batch.get("batch_size"))
            runs = _int((batch.get("compute_infer", {}) or {}).get("count"))
            if size and runs:
                stats.batch_executions[size] = stats.batch_executions.get(size, 0) + runs
    return stats


# -------------------------------------------------------------- model config
def _message_to_dict(message: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def config_parameters(config: Mapping[str, Any]) -> dict[str, str]:
    """``parameters`` of a model config as ``{key: string_value}``."""
    params = config.get("parameters", {}) or {}
    return {str(k): str((v or {}).get("string_value", "")) for k, v in params.items()}


def io_from_config(config: Mapping[str, Any], export: Mapping[str, Any] | None, where: str) -> IOSpec:
    """The runner's :class:`IOSpec` from a Triton model config (+ the export facts when published)."""
    inputs = config.get("input", []) or []
    if len(inputs) != 1:
        raise ArtifactError(f"{where} has {len(inputs)} inputs; fcn-edge runs models with one image input")
    export = dict(export or {})
    max_batch = _int(config.get("max_batch_size"))

    def spec(entry: Mapping[str, Any], layout_for: str) -> TensorSpec:
        dtype = TRITON_TO_NUMPY.get(str(entry.get("data_type")))
        if dtype is None:
            raise ArtifactError(f"{where}: tensor {entry.get('name')!r} has type {entry.get('data_type')}, "
                                "which fcn-edge cannot use")
        dims = [_int(d) for d in entry.get("dims", [])]
        shape = tuple(None if d < 0 else d for d in dims)
        if max_batch > 0:
            shape = (None,) + shape
        rank = len(shape)
        layout = layout_for if rank == 4 else ("NHW" if rank == 3 else "")
        return TensorSpec(str(entry.get("name")), dtype, shape, layout)

    first = inputs[0]
    in_dtype = TRITON_TO_NUMPY.get(str(first.get("data_type")), "")
    kind = export.get("io") if export.get("io") in ("frames", "raw") else ("frames" if in_dtype == "uint8" else "raw")
    layout = "NHWC" if kind == "frames" else "NCHW"
    in_spec = spec(first, layout)
    if len(in_spec.shape) != 4:
        raise ArtifactError(f"{where}: input {in_spec.name!r} has rank {len(in_spec.shape)} with the batch; "
                            "expected a 4-D image batch")
    outputs = tuple(spec(o, "NCHW") for o in config.get("output", []) or [])
    if not outputs:
        raise ArtifactError(f"{where} declares no outputs")
    h, w = (in_spec.shape[1], in_spec.shape[2]) if kind == "frames" else (in_spec.shape[2], in_spec.shape[3])
    size = (h, w) if h is not None and w is not None else None
    size_range = None
    dynamic = export.get("dynamic") or {}
    if size is None and isinstance(dynamic, dict) and "height" in dynamic and "width" in dynamic:
        size_range = ((int(dynamic["height"][0]), int(dynamic["width"][0])),
                      (int(dynamic["height"][2]), int(dynamic["width"][2])))
    preferred = tuple(export["size"]) if isinstance(export.get("size"), (list, tuple)) and len(export["size"]) == 2 \
        else size
    if max_batch > 0:
        batch, max_b = None, max_batch
    else:
        batch = in_spec.shape[0]
        max_b = batch
    return IOSpec(kind=kind, input=in_spec, outputs=outputs, size=size,
                  preferred_size=tuple(int(v) for v in preferred) if preferred else None,
                  batch=batch, max_batch=max_b, size_range=size_range)


# ---------------------------------------------------------------------- runner
class TritonRunner(Runner):
    """Sends batches to a model on a Triton Inference Server (see the module docstring)."""

    backend = "triton"
    timing_notes = {
        **Runner.timing_notes,
        "infer": "client wall time of the request: serialise, send, server queue + compute, receive, decode",
        "request": "same as infer",
        "server_queue": "Triton scheduler queue time per request (dynamic-batching delay included); average over "
                        "the last statistics window, all clients of the model",
        "server_compute": "Triton compute input+infer+output time of the batch each request ran in; average over the "
                          "last statistics window, all clients of the model",
        "network": "request - server_queue - server_compute: transport, HTTP/gRPC handling, (de)serialisation",
    }

    def __init__(self, model_url: str, *, timeout: float | None = None, confidence: bool = False,
                 outputs: Sequence[str] | None = None, max_in_flight: int | None = None,
                 stats_interval: float | None = None, headers: Mapping[str, str] | None = None,
                 info: ModelInfo | None = None) -> None:
        super().__init__()
        self.address = parse_triton_url(model_url)
        opts = self.address.options
        self.model_path = self.address.url
        self.timeout = float(timeout if timeout is not None else opts.get("timeout", 30.0))
        self.stats_interval = float(stats_interval if stats_interval is not None else opts.get("stats_interval", 1.0))
        self.max_in_flight = max(1, int(max_in_flight if max_in_flight is not None else opts.get("max_in_flight", 2)))
        self._headers = dict(headers or {})
        self._want_confidence = confidence
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._module = require(f"tritonclient.{self.address.protocol}",
                               purpose=f"to use models on a Triton server ({self.address.url})")
        self._executor: ThreadPoolExecutor | None = None
        try:
            self._connect(outputs, info)
        except BaseException:
            self._close()
            self._closed = True
            raise

    def _connect(self, outputs: Sequence[str] | None, info: ModelInfo | None) -> None:
        """Check the server and the model, read its configuration and description."""
        client = self._client()
        self._check_server(client)
        config = self._model_config(client)
        params = config_parameters(config)
        self.model_config = config
        self.parameters = params
        export = _json_param(params, EXPORT_PARAM, self.model_path)
        self.export_facts = export
        self.io = io_from_config(config, export, self.model_path)
        described = _json_param(params, MODEL_PARAM, self.model_path)
        if info is not None:
            self.info = info
        elif described is not None:
            try:
                self.info = ModelInfo.from_dict(described)
            except ArtifactError as exc:
                raise ArtifactError(f"{self.model_path}: its '{MODEL_PARAM}' parameter is invalid ({exc})") from exc
        else:
            from fcn_edge.runtime.fallback import assume_model_info

            classes = None
            for spec in self.io.outputs:
                if spec.name == LOGITS and len(spec.shape) == 4 and spec.shape[1]:
                    classes = int(spec.shape[1])
            self.info = assume_model_info(self.model_path, io_kind=self.io.kind, num_classes=classes)
        scale = (export or {}).get("confidence_scale")
        self._confidence_scale = float(scale) if isinstance(scale, (int, float)) and scale > 0 else None
        wanted = list(outputs) if outputs else list(self.io.output_names)
        unknown = [n for n in wanted if n not in self.io.output_names]
        if unknown:
            raise FcnEdgeError(f"{self.model_path} has no output(s) {unknown}; it has {list(self.io.output_names)}")
        self._output_names = wanted
        self._stats_available = True
        self._stats_note = ""
        self._window_start: ServerStats | None = None
        self._window_time = 0.0
        self._opened_stats: ServerStats | None = None
        self._last_split: dict[str, float] = {}
        self._fetch_stats(initial=True)

    # ---------------------------------------------------------------- clients
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            host = self.address.endpoint
            if self.address.protocol == "http":
                client = self._module.InferenceServerClient(host, connection_timeout=self.timeout,
                                                            network_timeout=self.timeout, ssl=self.address.ssl)
            else:
                client = self._module.InferenceServerClient(host, ssl=self.address.ssl)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _call(self, what: str, fn, *args, **kwargs):
        """Run a client call, turning connection and server errors into one sentence."""
        exception_type = require("tritonclient.utils").InferenceServerException
        if self.address.protocol == "grpc" and "client_timeout" not in kwargs and what != "infer":
            kwargs["client_timeout"] = self.timeout
        try:
            return fn(*args, **kwargs)
        except exception_type as exc:
            message = (exc.message() if callable(getattr(exc, "message", None)) else str(exc)) or str(exc)
            raise RemoteInferenceError(f"Triton at {self.address.endpoint} ({what}): {message.strip()[:400]}") from None
        except (OSError, ConnectionError) as exc:
            raise RemoteInferenceError(f"cannot reach Triton at {self.address.endpoint} ({what}): "
                                       f"{exc.strerror or exc}; is `fcn-edge serve` running there?") from None

    def _check_server(self, client) -> None:
        try:
            live = self._call("health", client.is_server_live, headers=self._headers)
        except RemoteInferenceError as exc:
            raise RemoteInferenceError(f"{exc}; start a server with `fcn-edge serve MODEL` or check the address "
                                       f"and port ({self.address.protocol.upper()} default "
                                       f"{DEFAULT_PORTS[self.address.protocol]})") from None
        if not live:
            raise RemoteInferenceError(f"Triton at {self.address.endpoint} answers but is not live")
        ready = self._call("model readiness", client.is_model_ready, self.address.model, self.address.version,
                           headers=self._headers)
        if not ready:
            known = ""
            try:
                index = self._call("repository index", client.get_model_repository_index, headers=self._headers)
                if not isinstance(index, list):
                    index = _message_to_dict(index).get("models", [])
                names = sorted({str(m.get("name")) for m in index if m.get("name")})
                known = f"; it has {', '.join(names)}" if names else ""
            except RemoteInferenceError:
                pass
            raise RemoteInferenceError(f"model {self.address.model!r}"
                                       + (f" version {self.address.version}" if self.address.version else "")
                                       + f" is not loaded and ready on Triton at {self.address.endpoint}{known}")

    def _model_config(self, client) -> dict[str, Any]:
        result = self._call("model config", client.get_model_config, self.address.model, self.address.version,
                            headers=self._headers)
        if self.address.protocol == "grpc":
            result = _message_to_dict(result.config)
        return dict(result)

    # ------------------------------------------------------------ statistics
    def server_statistics(self) -> ServerStats:
        """Cumulative statistics of this model on the server (all clients)."""
        client = self._client()
        data = self._call("statistics", client.get_inference_statistics, self.address.model, self.address.version,
                          headers=self._headers)
        if self.address.protocol == "grpc":
            data = _message_to_dict(data)
        return parse_statistics(data, self.address.model, self.address.version)

    def _fetch_stats(self, initial: bool = False) -> None:
        if not self._stats_available:
            return
        try:
            current = self.server_statistics()
        except RemoteInferenceError as exc:
            self._stats_available = False
            self._stats_note = f"server statistics unavailable ({exc}); timings show only the client side"
            log.info("%s", self._stats_note)
            return
        now = time.perf_counter()
        with self._stats_lock:
            if initial or self._window_start is None:
                self._opened_stats = current
            else:
                split = current.minus(self._window_start).per_request_ms()
                if split:
                    self._last_split = split
            self._window_start = current
            self._window_time = now

    def _server_split(self) -> dict[str, float]:
        due = time.perf_counter() - self._window_time >= self.stats_interval
        if due and self._stats_available:
            self._fetch_stats()
        with self._stats_lock:
            return dict(self._last_split)

    # ---------------------------------------------------------------- running
    def submit(self, batch: np.ndarray | Sequence[np.ndarray]) -> PendingInference:
        """Send a batch; up to ``max_in_flight`` requests may be on the wire at once."""
        self._check_open()
        prepared = self.prepare_input(batch)
        if self.max_in_flight <= 1:
            return PendingInference.done(self._run(prepared))
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="fcn-edge-triton")
        future = self._executor.submit(self._run, prepared)
        return PendingInference(future.result)

    def _run(self, batch: np.ndarray) -> InferenceResult:
        module = self._module
        client = self._client()
        start = time.perf_counter()
        tensor = module.InferInput(self.io.input.name, list(batch.shape), wire_dtype(batch.dtype))
        if self.address.protocol == "http":
            tensor.set_data_from_numpy(batch, binary_data=True)
            requested = [module.InferRequestedOutput(n, binary_data=True) for n in self._output_names]
            kwargs: dict[str, Any] = {}
        else:
            tensor.set_data_from_numpy(batch)
            requested = [module.InferRequestedOutput(n) for n in self._output_names]
            kwargs = {"client_timeout": self.timeout}
        response = self._call("infer", client.infer, self.address.model, [tensor], model_version=self.address.version,
                              outputs=requested, headers=self._headers, **kwargs)
        outputs = {name: response.as_numpy(name) for name in self._output_names}
        request_ms = (time.perf_counter() - start) * 1000.0
        timings = {"infer": request_ms, "request": request_ms}
        split = self._server_split()
        if split:
            timings["server_queue"] = split["server_queue"]
            timings["server_compute"] = split["server_compute"]
            timings["network"] = max(0.0, request_ms - split["server_queue"] - split["server_compute"])
        return build_result(outputs, self.io, self.info, timings, want_confidence=self._want_confidence,
                            confidence_scale=self._confidence_scale)

    def _close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass

    def run_statistics(self) -> ServerStats | None:
        """Server statistics of this model since this runner was opened (all clients), or None."""
        if not self._stats_available or self._opened_stats is None:
            return None
        try:
            return self.server_statistics().minus(self._opened_stats)
        except RemoteInferenceError:
            return None

    def _describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"server": self.address.endpoint, "protocol": self.address.protocol,
                                 "model_name": self.address.model, "model_version": self.address.version or "policy",
                                 "max_batch_size": _int(self.model_config.get("max_batch_size")),
                                 "outputs": list(self._output_names), "max_in_flight": self.max_in_flight,
                                 "described": MODEL_PARAM in self.parameters, "timing_notes": dict(self.timing_notes)}
        if self._stats_note:
            facts["statistics"] = self._stats_note
        return facts


def _json_param(params: Mapping[str, str], key: str, where: str) -> dict[str, Any] | None:
    text = params.get(key)
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{where}: its '{key}' parameter is not valid JSON ({exc})") from exc
    return value if isinstance(value, dict) else None


def open_triton(model_url: str, **options: Any) -> TritonRunner:
    """Loader + runner for ``triton://`` URLs (see :class:`TritonRunner` for the options)."""
    return TritonRunner(str(model_url), **options)


__all__ = ["TritonRunner", "open_triton", "parse_triton_url", "TritonAddress", "ServerStats", "parse_statistics",
           "io_from_config", "config_parameters", "RemoteInferenceError", "TRITON_TO_NUMPY", "NUMPY_TO_TRITON",
           "triton_dtype", "wire_dtype", "MODEL_PARAM", "EXPORT_PARAM", "VERSION_PARAM"]
