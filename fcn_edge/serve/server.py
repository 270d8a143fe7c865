"""A real Triton Inference Server in front of our runtime backends, through PyTriton.

:class:`TritonService` opens the model with :func:`fcn_edge.runtime.open_runner` (ONNX
Runtime for ``.onnx``, TensorRT for ``.engine``; one runner per Triton model
instance), binds it to PyTriton with the model's own tensors (uint8 ``HxWx3`` frames
in; ``labels`` and, when exported, ``confidence`` out, dtypes as exported), enables
Triton's dynamic batcher, and starts ``tritonserver`` with health/readiness endpoints,
Prometheus metrics and the statistics extension.

Why PyTriton and not a model repository?  Our backends already know the artifact
(metadata, sidecar checks, raw/frames I/O, TensorRT buffer handling), so the served
model is exactly what ``fcn-edge run`` runs; ``fcn-edge triton-repo`` covers the
official containers with Triton's own backends instead.

The model's self-description is published in its Triton config ``parameters``
(``fcn_edge.model``: ModelInfo JSON, ``fcn_edge.export``: the export facts), where the
``triton://`` client reads it (``GET /v2/models/NAME/config``).  PyTriton protects
some endpoints with a generated token; the statistics endpoint is left open so that
clients can split their latency into network, queue and compute (model control,
shared memory, tracing and logging stay protected).

Bad requests: Triton checks every request against the config (dtype, dims, batch
size <= ``max_batch_size``) before it reaches the batcher, so a wrong request gets
its own error and never spoils a batch of good ones.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.lazy import require
from fcn_edge.artifacts.modelinfo import CONFIDENCE_UINT8_MAX, label_dtype
from fcn_edge.runtime.base import CONFIDENCE, LABELS, LOGITS, InferenceResult, Runner
from fcn_edge.serve.environment import (ServeError, StubEnvironment, apply_stub_environment, check_port_free,
                                        diagnose_server_failure, prepare_stub_environment, restore_ld_library_path)
from fcn_edge.serve.model_config import BatchPlan, model_parameters, plan_serve_batching

log = logging.getLogger(__name__)

PROTECTED_ENDPOINTS = ["shared-memory", "model-repository", "trace", "logging"]


class _HandshakeRace(ServeError):
    """PyTriton 0.7's later model instances connect to the first one's handshake socket with a 1 s
    timeout and fail when it is not listening yet (seen on a loaded 2-core machine); a new start works."""


@dataclass
class ServeConfig:
    """How to serve one model.

    ``max_batch``: Triton's ``max_batch_size`` (None: what the model takes, 8 for an
    unbounded dynamic batch).  ``max_queue_delay_us``: how long the dynamic batcher may
    hold a request to fill a batch.  ``instances``: model instances (one runner and
    one Triton execution thread each).  ``backend_options`` go to ``open_runner``.
    ``exit_timeout`` (s): how long a stop waits for in-flight requests and open
    client connections before Triton exits anyway.
    """

    model: str
    model_name: str | None = None
    address: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int | None = None
    max_queue_delay_us: int = 2000
    instances: int = 1
    backend: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    exit_timeout: int = 5
    log_verbose: int = 0
    startup_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.instances < 1:
            raise FcnEdgeError(f"--instances must be at least 1, got {self.instances}")
        if self.max_queue_delay_us < 0:
            raise FcnEdgeError(f"--max-queue-delay-us must be 0 or more, got {self.max_queue_delay_us}")
        if self.exit_timeout < 0:
            raise FcnEdgeError(f"--exit-timeout must be 0 or more, got {self.exit_timeout}")
        ports = {"--http-port": self.http_port, "--grpc-port": self.grpc_port, "--metrics-port": self.metrics_port}
        if len(set(ports.values())) != len(ports):
            raise FcnEdgeError(f"the HTTP, gRPC and metrics ports must differ, got {ports}")


def default_model_name(model_path: str) -> str:
    """``export/fcn8s.fp16.engine`` -> ``fcn8s.fp16``: a Triton-valid name from the file name."""
    stem = Path(str(model_path)).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return name or "fcn_edge"


def check_model_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name or ""):
        raise FcnEdgeError(f"model name {name!r} may use only letters, digits, '.', '_' and '-'")
    return name


def to_dtype(values: np.ndarray, dtype: str, scale: float = 1.0) -> np.ndarray:
    """The runner's output back in the model's own dtype (integers rounded and clipped, as the graph casts).

    ``scale`` undoes the runtime's reading of a stored value: the runner returns
    confidence as a probability (stored value x ``confidence_scale``, 1/255 for uint8),
    the served tensor is the stored value, exactly what the exported graph outputs.
    """
    target = np.dtype(dtype)
    values = np.asarray(values)
    if scale != 1.0:
        values = values.astype(np.float32) / np.float32(scale)
    if values.dtype == target:
        return values
    if target.kind in "ui" and values.dtype.kind == "f":
        info = np.iinfo(target)
        return np.clip(np.rint(values), info.min, info.max).astype(target)
    return values.astype(target)


def export_facts_of(model_path: str) -> dict[str, Any] | None:
    """The export facts an artifact carries (ONNX metadata or engine sidecar), None when it has none."""
    path = Path(model_path)
    try:
        if path.suffix.lower() == ".onnx":
            from fcn_edge.artifacts.onnx_metadata import read_onnx_metadata

            return read_onnx_metadata(path)[1].to_dict()
        if path.suffix.lower() in (".engine", ".plan", ".trt"):
            from fcn_edge.artifacts.sidecar import read_sidecar

            return dict(read_sidecar(path).data.get("export") or {}) or None
    except (ArtifactError, OSError, KeyError, ValueError) as exc:
        log.debug("no export facts for %s: %s", model_path, exc)
    return None


class BatchInferer:
    """The inference callable of one Triton model instance: Triton's requests -> our runner -> responses.

    Triton hands over the requests its dynamic batcher combined; they are stacked into
    one batch (grouped by frame size for variable-size models), run through the
    runner in chunks the model accepts (padded for static batches), and split back.
    """

    def __init__(self, runner: Runner, plan: BatchPlan, output_dtypes: dict[str, str],
                 confidence_scale: float | None = None) -> None:
        self.runner = runner
        self.plan = plan
        self.output_dtypes = output_dtypes
        confidence = output_dtypes.get(CONFIDENCE)
        self.confidence_scale = confidence_scale or (1.0 / CONFIDENCE_UINT8_MAX if confidence == "uint8" else 1.0)
        self.input_name = runner.io.input.name
        self.lock = threading.Lock()
        self.calls = 0
        self.frames = 0

    def __call__(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        arrays = [np.asarray(request[self.input_name]) for request in requests]
        results: list[dict[str, np.ndarray] | None] = [None] * len(arrays)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault(tuple(array.shape[1:]), []).append(index)
        with self.lock:
            for indices in groups.values():
                stacked = np.concatenate([arrays[i] for i in indices]) if len(indices) > 1 else arrays[indices[0]]
                outputs = self._run(stacked)
                start = 0
                for i in indices:
                    n = len(arrays[i])
                    results[i] = {name: value[start:start + n] for name, value in outputs.items()}
                    start += n
        return results  # type: ignore[return-value]

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        chunk = self.plan.chunk or len(batch)
        parts: list[dict[str, np.ndarray]] = []
        for begin in range(0, len(batch), chunk):
            part = batch[begin:begin + chunk]
            real = len(part)
            if self.plan.pad_to and real < self.plan.pad_to:
                part = np.concatenate([part, np.repeat(part[-1:], self.plan.pad_to - real, axis=0)])
            result = self.runner.infer(part)
            self.calls += 1
            self.frames += real
            parts.append({k: v[:real] for k, v in self._outputs(result).items()})
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _outputs(self, result: InferenceResult) -> dict[str, np.ndarray]:
        out = {}
        for name, dtype in self.output_dtypes.items():
            if name == LABELS:
                value = result.labels
            elif name == CONFIDENCE:
                value = result.confidence
            elif name == LOGITS:
                value = result.logits
            else:
                value = result.extra.get(name)
            if value is None:
                raise FcnEdgeError(f"the runner returned no {name!r} output")
            out[name] = to_dtype(value, dtype, self.confidence_scale if name == CONFIDENCE else 1.0)
        return out


def served_outputs(runner: Runner) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Output name -> (dtype, dims without the batch axis) as Triton will declare them."""
    labels_dtype = label_dtype(runner.info.num_classes)
    out = {}
    for spec in runner.io.outputs:
        dims = tuple(-1 if d is None else int(d) for d in spec.shape[1:])
        if spec.name == LABELS:
            dtype = labels_dtype
            dims = dims[1:] if len(dims) == 3 and dims[0] == 1 else dims  # [N,1,H,W] labels are returned as [N,H,W]
        elif spec.name in (CONFIDENCE,):
            dtype = spec.dtype
            dims = dims[1:] if len(dims) == 3 and dims[0] == 1 else dims
        elif spec.name == LOGITS:
            dtype = "float32"
        else:
            dtype = spec.dtype
        out[spec.name] = (dtype, dims)
    if LABELS not in out:  # raw models: labels are computed from logits on the host
        size = runner.io.size
        out[LABELS] = (labels_dtype, (size if size else (-1, -1)))
    return out


class TritonService:
    """Start/stop one model on a PyTriton-managed Triton server (a context manager)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.model_name = check_model_name(config.model_name or default_model_name(config.model))
        self.runners: list[Runner] = []
        self.inferers: list[BatchInferer] = []
        self.plan: BatchPlan | None = None
        self.environment: StubEnvironment | None = None
        self._triton = None
        self._tmp: Path | None = None
        self._log_file: Path | None = None
        self._descendants: set[int] = set()
        self._previous_ld_path: str | None = None
        self._export_facts: dict[str, Any] | None = None
        self._ld_path_applied = False
        self.started = False

    # ------------------------------------------------------------------ facts
    @property
    def connect_address(self) -> str:
        address = self.config.address
        return "127.0.0.1" if address in ("0.0.0.0", "") else ("::1" if address == "::" else address)

    @property
    def http_url(self) -> str:
        return f"http://{self.connect_address}:{self.config.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.connect_address}:{self.config.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.connect_address}:{self.config.metrics_port}/metrics"

    @property
    def model_url(self) -> str:
        return f"triton://{self.connect_address}:{self.config.http_port}/{self.model_name}"

    @property
    def server_pids(self) -> set[int]:
        """The tritonserver process and its Python backend stubs (as last seen)."""
        self._track_descendants()
        return set(self._descendants)

    # --------------------------------------------------------------- lifecycle
    def start(self) -> "TritonService":
        cfg = self.config
        pytriton_triton = require("pytriton.triton", purpose="to serve models with Triton (fcn-edge serve)")
        model_config_module = require("pytriton.model_config")
        for port, what, option in ((cfg.http_port, "HTTP", "--http-port"), (cfg.grpc_port, "gRPC", "--grpc-port"),
                                   (cfg.metrics_port, "metrics", "--metrics-port")):
            check_port_free(cfg.address or "0.0.0.0", port, what, option)
        env = prepare_stub_environment()
        self.environment = env
        if env.problems:
            raise ServeError(env.problems[0])
        for note in env.notes:
            log.warning("%s", note)
        self._previous_ld_path = apply_stub_environment(env)
        self._ld_path_applied = True
        log.debug("python backend stub: %s", env.to_dict())

        self._open_runners()
        runner = self.runners[0]
        self.plan = plan_serve_batching(runner.io, cfg.max_batch)
        for note in self.plan.notes:
            log.warning("%s", note)
        outputs = served_outputs(runner)
        facts = export_facts_of(cfg.model) or {}
        scale = facts.get("confidence_scale")
        scale = float(scale) if isinstance(scale, (int, float)) and scale > 0 else None
        self._export_facts = facts or None
        self.inferers = [BatchInferer(r, self.plan, {name: dtype for name, (dtype, _) in outputs.items()}, scale)
                         for r in self.runners]

        io = runner.io
        in_dims = tuple(-1 if d is None else int(d) for d in io.input.shape[1:])
        Tensor = model_config_module.Tensor
        inputs = [Tensor(name=io.input.name, dtype=np.dtype(io.input.dtype), shape=in_dims)]
        output_tensors = [Tensor(name=name, dtype=np.dtype(dtype), shape=dims) for name, (dtype, dims) in outputs.items()]
        batcher = model_config_module.DynamicBatcher(max_queue_delay_microseconds=int(cfg.max_queue_delay_us),
                                                     preferred_batch_size=list(self.plan.preferred) or None)
        model_config = model_config_module.ModelConfig(batching=True, max_batch_size=self.plan.max_batch_size,
                                                       batcher=batcher)

        spec = (inputs, output_tensors, model_config)
        for attempt in (1, 2):
            try:
                self._launch(pytriton_triton, spec, runner, env)
                break
            except _HandshakeRace as race:
                if attempt == 2:
                    self.stop()
                    raise ServeError(str(race)) from None
                log.warning("the model's second instance missed PyTriton's start-up handshake (a race on a busy "
                            "machine); starting the server again")
        self._track_descendants()
        self.started = True
        return self

    def _launch(self, pytriton_triton: Any, spec: tuple, runner: Runner, env: StubEnvironment) -> None:
        """Configure, bind and run Triton once; raises ServeError (or _HandshakeRace, worth one retry)."""
        cfg = self.config
        inputs, output_tensors, model_config = spec
        self._tmp = Path(tempfile.mkdtemp(prefix="fcn-edge-serve-"))
        self._log_file = self._tmp / "tritonserver.log"
        triton_config = pytriton_triton.TritonConfig(
            http_address=cfg.address, http_port=cfg.http_port, grpc_address=cfg.address, grpc_port=cfg.grpc_port,
            metrics_port=cfg.metrics_port, metrics_address=cfg.address, allow_metrics=True, allow_cpu_metrics=True,
            allow_gpu_metrics=shutil.which("nvidia-smi") is not None,
            exit_timeout_secs=int(cfg.exit_timeout), log_verbose=int(cfg.log_verbose), log_file=self._log_file)
        security = pytriton_triton.TritonSecurityConfig(restricted_endpoints=list(PROTECTED_ENDPOINTS))
        try:
            triton = pytriton_triton.Triton(config=triton_config, workspace=self._tmp / "workspace",
                                            security_config=security)
        except Exception as exc:  # noqa: BLE001 - PyTriton validation errors
            self.stop()
            raise ServeError(f"cannot configure Triton: {exc}") from exc
        self._triton = triton
        infer_funcs: Callable | list[Callable] = self.inferers if len(self.inferers) > 1 else self.inferers[0]
        triton.bind(model_name=self.model_name, infer_func=infer_funcs, inputs=inputs, outputs=output_tensors,
                    config=model_config, strict=False)
        self._publish_description(triton, runner)
        try:
            triton.run()
            failure: BaseException | None = None
        except BaseException as exc:  # noqa: BLE001 - diagnose, clean up, one sentence
            if isinstance(exc, KeyboardInterrupt):
                self.stop()
                raise
            failure = exc
        if failure is None and triton.is_alive() and self._wait_model_ready():
            return
        text = self._server_log() + ("\n" + str(failure) if failure is not None else "")
        message = diagnose_server_failure(self._server_log(), env, failure)
        kept = self._kept_log()  # before stop() removes the temporary folder
        if "get_config_from_handshake_server" in text:
            self._stop_server_only()
            raise _HandshakeRace(f"{message} (server log: {kept})")
        self.stop()
        raise ServeError(f"{message} (server log: {kept})")

    def _stop_server_only(self) -> None:
        """Stop Triton and its processes but keep the runners (for a second start)."""
        triton, self._triton = self._triton, None
        self._track_descendants()
        if triton is not None:
            try:
                triton.stop()
            except Exception as exc:  # noqa: BLE001
                log.debug("PyTriton did not stop cleanly: %s", exc)
        self._reap_descendants()
        self._remove_temporary_files()

    def _remove_temporary_files(self) -> None:
        """Our temporary folder, and the model copies tritonserver left in the temp dir.

        Models loaded through Triton's repository API with file contents (how PyTriton
        loads its proxy model) are written to ``$TMPDIR/folderXXXXXX``, which Triton
        removes only when it unloads the model; PyTriton stops the server first, so each
        start would leave one behind.  Only folders whose config names our workspace
        (unique to this service) are removed.
        """
        if self._tmp is None:
            return
        marker = str(self._tmp / "workspace")
        for folder in {Path(tempfile.gettempdir()), Path("/tmp")}:
            try:
                candidates = list(folder.glob("folder*"))
            except OSError:
                continue
            for candidate in candidates:
                config = candidate / "config.pbtxt"
                try:
                    if candidate.is_dir() and marker in config.read_text(errors="replace"):
                        shutil.rmtree(candidate, ignore_errors=True)
                except OSError:
                    continue
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None

    def _wait_model_ready(self) -> bool:
        """True once Triton reports the model ready (its own /v2/health/ready turns 200 before the model loads)."""
        http = require("tritonclient.http", purpose="to check the served model")
        deadline = time.monotonic() + self.config.startup_timeout
        client = http.InferenceServerClient(f"{self.connect_address}:{self.config.http_port}", connection_timeout=5,
                                            network_timeout=5)
        try:
            while time.monotonic() < deadline and self.is_alive():
                try:
                    if client.is_model_ready(self.model_name):
                        return True
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                time.sleep(0.2)
        finally:
            client.close()
        return False

    def _open_runners(self) -> None:
        from fcn_edge.runtime import open_runner, resolve_backend

        cfg = self.config
        backend = resolve_backend(cfg.model, cfg.backend).name
        if backend == "triton":
            raise FcnEdgeError(f"{cfg.model} is already a Triton URL; serve the model file itself")
        options = dict(cfg.backend_options)
        if backend == "onnxruntime" and options.get("intra_op_threads") is None:
            # several instances share the cores instead of each spawning a pool as large as the machine
            options["intra_op_threads"] = max(1, (os.cpu_count() or 1) // cfg.instances)
        try:
            for _ in range(cfg.instances):
                self.runners.append(open_runner(cfg.model, backend=cfg.backend, **options))
            size = self.runners[0].io.network_size(None) if (self.runners[0].io.size or
                                                            self.runners[0].io.preferred_size) else None
            for runner in self.runners:
                if size is not None and runner.io.size is not None:
                    runner.warmup(size)
        except BaseException:
            self._cleanup_runners()
            raise

    def _publish_description(self, triton: Any, runner: Runner) -> None:
        """Put ModelInfo and the export facts into the model's Triton config ``parameters``.

        PyTriton has no public hook for extra config parameters; its model object keeps
        the generated config (``backend_parameters``) until it is loaded, which is where
        they are added.  If a later PyTriton changes that, serving still works and
        clients fall back to the tensors of the config (with a warning here).
        """
        params = model_parameters(runner.info, self._export_facts)
        params["fcn_edge.backend"] = runner.backend
        try:
            for model in triton._model_manager.models:  # noqa: SLF001 - see docstring
                if model.model_name == self.model_name:
                    model._get_triton_model_config().backend_parameters.update(params)  # noqa: SLF001
                    return
        except AttributeError:
            pass
        log.warning("could not publish the model description in the Triton config (PyTriton internals changed): "
                    "triton:// clients will show generic class names")

    def _server_log(self) -> str:
        text = ""
        if self._log_file is not None and self._log_file.exists():
            text = self._log_file.read_text(errors="replace")
        server = getattr(self._triton, "_triton_server", None)
        logs = getattr(server, "logs", None)
        if callable(logs):
            try:
                text += "\n" + logs()
            except Exception:  # noqa: BLE001 - best effort
                pass
        return text

    def _kept_log(self) -> str:
        """Copy the server log out of the temporary folder (removed on stop) and return its path."""
        if self._log_file is None or not self._log_file.exists():
            return "none written"
        kept = Path(tempfile.gettempdir()) / f"fcn-edge-serve-{os.getpid()}.log"
        try:
            shutil.copyfile(self._log_file, kept)
        except OSError:
            return str(self._log_file)
        return str(kept)

    def is_alive(self) -> bool:
        return self._triton is not None and bool(self._triton.is_alive())

    def wait(self, stop: threading.Event, poll: float = 1.0) -> str:
        """Block until ``stop`` is set ("signal") or the server dies ("server-exited")."""
        while not stop.wait(poll):
            if not self.is_alive():
                return "server-exited"
        return "signal"

    def stop(self) -> None:
        """Stop Triton, then release the runners; leaves no server process behind."""
        triton, self._triton = self._triton, None
        self._track_descendants()
        if triton is not None:
            try:
                triton.stop()
            except Exception as exc:  # noqa: BLE001 - keep shutting down
                log.warning("PyTriton did not stop cleanly: %s", exc)
        self._reap_descendants()
        self._cleanup_runners()
        if self._ld_path_applied:  # the caller's environment as it was
            restore_ld_library_path(self._previous_ld_path)
            self._ld_path_applied = False
        self._remove_temporary_files()
        self.started = False

    def _cleanup_runners(self) -> None:
        runners, self.runners = self.runners, []
        for runner in runners:
            try:
                runner.close()
            except Exception:  # noqa: BLE001
                log.debug("closing a runner failed", exc_info=True)

    # ---------------------------------------------------------- child processes
    def _track_descendants(self) -> None:
        self._descendants |= server_processes(os.getpid())

    def _reap_descendants(self, grace: float = 5.0) -> None:
        """Terminate, then kill, any server process that outlived the stop (none should)."""
        pids = {p for p in self._descendants if process_alive(p)}
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = {p for p in pids if process_alive(p)}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not pids:
                break
            log.warning("terminating %d leftover Triton process(es): %s", len(pids), sorted(pids))
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            time.sleep(1.0)
            pids = {p for p in pids if process_alive(p)}
        self._descendants.clear()

    def describe(self) -> dict[str, Any]:
        runner = self.runners[0] if self.runners else None
        return {
            "model": self.config.model, "model_name": self.model_name, "url": self.model_url,
            "http": self.http_url, "grpc": self.grpc_url, "metrics": self.metrics_url,
            "backend": runner.backend if runner else None, "instances": self.config.instances,
            "max_batch_size": self.plan.max_batch_size if self.plan else None,
            "max_queue_delay_us": self.config.max_queue_delay_us,
            "python_backend": self.environment.to_dict() if self.environment else None,
        }

    def __enter__(self) -> "TritonService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc; an empty set elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return set()
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: the ppid follows the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) >= 2:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


SERVER_PROCESS_NAMES = ("tritonserver", "triton_python_backend_stub")


def server_processes(pid: int) -> set[int]:
    """The Triton server processes below ``pid``: tritonserver and its Python backend stubs.

    Other children (multiprocessing's resource tracker, ...) belong to the caller and
    are left alone.
    """
    found = set()
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(name in cmdline for name in SERVER_PROCESS_NAMES):
            found.add(child)
            found |= descendants(child)
    return found


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    state = stat[stat.rfind(")") + 2:].split()[0]
    return state != "Z"


__all__ = ["ServeConfig", "TritonService", "BatchInferer", "served_outputs", "default_model_name", "to_dtype",
           "export_facts_of", "descendants", "server_processes", "process_alive", "PROTECTED_ENDPOINTS"]
