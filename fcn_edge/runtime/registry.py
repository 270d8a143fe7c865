"""Which backend opens which model: file suffixes and URL schemes -> runner factories.

``open_runner("model.onnx")`` picks ONNX Runtime, ``.engine``/``.plan`` TensorRT,
``.pt``/``.pth`` PyTorch.  A backend is registered with the suffixes and URL schemes
it handles and a factory named as ``"module:function"`` so nothing is imported until a
model of that kind is opened (a Jetson without torch can still list the backends).
URL schemes work the same way: the Triton client is registered as::

    register_backend("triton", "fcn_edge.runtime.triton_backend:open_triton",
                     schemes=("triton", "triton+http", "triton+https", "triton+grpc", "triton+grpcs"))

so ``open_runner("triton://host:8000/fcn8s")`` works everywhere a model path is
accepted (run, eval, bench, Segmenter.open).  The factory is called as ``factory(model_path, **options)`` and returns a
:class:`fcn_edge.runtime.base.Runner`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from fcn_edge.errors import ArtifactError, FcnEdgeError


@dataclass(frozen=True)
class BackendEntry:
    name: str
    factory: str | Callable[..., Any]  # "module:function" or a callable
    suffixes: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    description: str = ""

    def load_factory(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        module_name, _, func = self.factory.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, func)


_BACKENDS: dict[str, BackendEntry] = {}


def register_backend(name: str, factory: str | Callable[..., Any], *, suffixes: tuple[str, ...] = (),
                     schemes: tuple[str, ...] = (), description: str = "", replace: bool = False) -> BackendEntry:
    """Register a backend; suffixes include the dot (``.onnx``), schemes do not (``triton``)."""
    if name in _BACKENDS and not replace:
        raise ValueError(f"backend {name!r} is already registered (pass replace=True to override)")
    entry = BackendEntry(name, factory, tuple(s.lower() for s in suffixes), tuple(s.lower() for s in schemes), description)
    _BACKENDS[name] = entry
    return entry


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def backends() -> dict[str, BackendEntry]:
    """The registered backends by name (a copy)."""
    return dict(_BACKENDS)


def is_url(model_path: str | os.PathLike) -> bool:
    text = str(model_path)
    scheme = urlsplit(text).scheme
    return "://" in text and len(scheme) > 1  # not a Windows drive letter


def resolve_backend(model_path: str | os.PathLike, backend: str | None = None) -> BackendEntry:
    """The backend for a model path/URL (or the one named), with a one-line error otherwise."""
    if backend is not None:
        if backend not in _BACKENDS:
            raise FcnEdgeError(f"unknown backend {backend!r}; choose one of {', '.join(sorted(_BACKENDS))}")
        return _BACKENDS[backend]
    text = str(model_path)
    if is_url(text):
        scheme = urlsplit(text).scheme.lower()
        for entry in _BACKENDS.values():
            if scheme in entry.schemes:
                return entry
        known = sorted(s for e in _BACKENDS.values() for s in e.schemes)
        raise FcnEdgeError(f"no backend serves {scheme}:// model URLs ({text}); "
                           f"known schemes: {', '.join(known) or 'none'}")
    suffix = Path(text).suffix.lower()
    for entry in _BACKENDS.values():
        if suffix in entry.suffixes:
            return entry
    known = sorted(s for e in _BACKENDS.values() for s in e.suffixes)
    raise ArtifactError(f"cannot tell which backend runs {text}: its suffix {suffix or '(none)'} is not one of "
                        f"{', '.join(known)} (or pass backend=...)")


def open_runner(model_path: str | os.PathLike, *, backend: str | None = None, **options: Any):
    """Open a model with the backend for its suffix or URL scheme; returns a Runner.

    Options are passed to the backend (see each backend's ``open_*`` function), e.g.
    ``providers=["cuda"]`` / ``intra_op_threads=2`` for ONNX Runtime, ``device="cuda"``
    for PyTorch, ``cuda="pycuda"`` (or ``"ctypes"``, ``"cuda-python"``) for TensorRT.
    """
    entry = resolve_backend(model_path, backend)
    if not is_url(model_path):
        path = Path(model_path)
        if not path.exists():
            raise ArtifactError(f"model {path} does not exist")
        if path.is_dir():
            raise ArtifactError(f"model {path} is a folder, not a model file")
        if path.stat().st_size == 0:  # before the backend imports torch / onnxruntime / tensorrt
            raise ArtifactError(f"model {path} is empty (0 bytes); copy or export it again")
    factory = entry.load_factory()
    return factory(model_path, **options)


def _register_builtin() -> None:
    register_backend("onnxruntime", "fcn_edge.runtime.onnxruntime_backend:open_onnxruntime",
                     suffixes=(".onnx",), description="ONNX Runtime (CPU; CUDA/TensorRT execution providers)")
    register_backend("tensorrt", "fcn_edge.runtime.tensorrt_backend:open_tensorrt",
                     suffixes=(".engine", ".plan", ".trt"), description="TensorRT engine (CUDA via cuda-python, pycuda or libcudart)")
    register_backend("torch", "fcn_edge.runtime.torch_backend:open_torch",
                     suffixes=(".pt", ".pth"), description="PyTorch checkpoint (for comparisons)")
    register_backend("triton", "fcn_edge.runtime.triton_backend:open_triton",
                     schemes=("triton", "triton+http", "triton+https", "triton+grpc", "triton+grpcs"),
                     description="a model on a Triton Inference Server (tritonclient; HTTP or gRPC)")


_register_builtin()
