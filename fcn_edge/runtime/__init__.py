"""Runtime backends with one interface: ``open_runner(model_path, **options) -> Runner``.

=================  ==================  ===========================================
model              backend             module (imported only when opened)
=================  ==================  ===========================================
``*.onnx``         ONNX Runtime        :mod:`fcn_edge.runtime.onnxruntime_backend`
``*.engine/.plan`` TensorRT            :mod:`fcn_edge.runtime.tensorrt_backend`
``*.pt/.pth``      PyTorch             :mod:`fcn_edge.runtime.torch_backend`
``triton://``      Triton (remote)     :mod:`fcn_edge.runtime.triton_backend`
=================  ==================  ===========================================

Every runner has ``info`` (:class:`~fcn_edge.artifacts.modelinfo.ModelInfo`), ``io``
(:class:`IOSpec`), ``infer(batch) -> InferenceResult``, ``submit(batch) ->
PendingInference`` (``max_in_flight`` outstanding), ``warmup()``, ``describe()`` and
``close()``, and is a context manager.  New backends join through
:func:`register_backend` (by suffix or URL scheme).  Importing this package imports
neither torch, tensorrt, pycuda nor onnxruntime.
"""

from fcn_edge.runtime.base import (IOSpec, InferenceResult, PendingInference, Runner, TensorSpec,
                                   build_result, normalise_label_array)
from fcn_edge.runtime.registry import (BackendEntry, backends, open_runner, register_backend, resolve_backend,
                                       unregister_backend)

__all__ = [
    "open_runner", "Runner", "InferenceResult", "PendingInference", "IOSpec", "TensorSpec",
    "register_backend", "unregister_backend", "resolve_backend", "backends", "BackendEntry",
    "build_result", "normalise_label_array",
]
