"""Serving on NVIDIA Triton Inference Server: ``fcn-edge serve`` and ``fcn-edge triton-repo``.

* :class:`TritonService` (``fcn-edge serve``): a real Triton server started through
  PyTriton, serving a model through our own runtime backends with dynamic batching,
  health/readiness endpoints and Prometheus metrics.
* :func:`write_repository` (``fcn-edge triton-repo``): a standard model repository for
  the official Triton containers (ONNX Runtime or TensorRT backends).
* Clients use ``triton://HOST:PORT/MODEL`` as a model path anywhere
  (:mod:`fcn_edge.runtime.triton_backend`).

Importing this package imports neither PyTriton nor tritonclient; both are optional
(``pip install 'fcn-edge[serve]'``) and loaded when a server starts or a repository is
written.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ServeConfig": "fcn_edge.serve.server",
    "TritonService": "fcn_edge.serve.server",
    "RepoConfig": "fcn_edge.serve.repo",
    "RepoModel": "fcn_edge.serve.repo",
    "write_repository": "fcn_edge.serve.repo",
    "ServeError": "fcn_edge.serve.environment",
    "prepare_stub_environment": "fcn_edge.serve.environment",
    "free_port": "fcn_edge.serve.environment",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fcn_edge.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
