"""A small CUDA layer over cuda-python (``cuda.bindings.runtime``), pycuda, or libcudart through ctypes.

The TensorRT runner needs only this much CUDA: device allocations, page-locked host
arrays, asynchronous host<->device copies on a stream, non-default streams that can
wait on events, and events for GPU-side timing.  Both Python bindings provide it;
cuda-python is preferred (NVIDIA's own TensorRT samples moved to it and it has
aarch64 wheels, pycuda builds from source on a Jetson).  cuda-bindings 13 removed the
old ``from cuda import cudart`` module, so the import tries ``cuda.bindings.runtime``
first and falls back to ``cuda.cudart`` for cuda-python 11.x/12.x.  When neither binding
imports, :mod:`fcn_edge.runtime.cuda_ctypes` calls the CUDA runtime library (``libcudart``,
which JetPack, the CUDA toolkit and NVIDIA's pip wheels ship) through ctypes, so TensorRT
engines run with nothing extra installed.

Nothing here imports TensorRT, so it is tested on any machine with a GPU (see
tests/runtime/test_cuda_memory.py, marked ``gpu``).
"""

from __future__ import annotations

import abc
import ctypes
import threading
from typing import Any, Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError, MissingDependencyError

CUDA_CHOICES = ("auto", "cuda-python", "pycuda", "ctypes")


class CudaError(FcnEdgeError):
    """A CUDA call failed (out of memory, no device, driver mismatch)."""


class DeviceBuffer:
    """A device allocation: ``ptr`` (int address) and ``nbytes``; ``free()`` once."""

    def __init__(self, ptr: int, nbytes: int, free: Any) -> None:
        self.ptr = int(ptr)
        self.nbytes = int(nbytes)
        self._free = free

    def free(self) -> None:
        if self._free is not None:
            free, self._free = self._free, None
            free()

    def __int__(self) -> int:
        return self.ptr


class Stream(abc.ABC):
    handle: int  # the cudaStream_t address, what TensorRT's execute_async_v3 takes

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    @abc.abstractmethod
    def wait_event(self, event: "Event") -> None:
        """Make later work on this stream wait until ``event`` has completed (GPU-side, host not blocked)."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Event(abc.ABC):
    @abc.abstractmethod
    def record(self, stream: Stream) -> None: ...

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    @abc.abstractmethod
    def query(self) -> bool:
        """True when the recorded work has completed."""

    @abc.abstractmethod
    def elapsed_ms(self, start: "Event") -> float:
        """GPU time from ``start`` to this event, in milliseconds (both recorded and completed)."""

    @abc.abstractmethod
    def close(self) -> None: ...


class CudaMemory(abc.ABC):
    """The operations the TensorRT runner uses, whichever binding provides them."""

    name: str = "?"
    device_id: int = 0

    @abc.abstractmethod
    def make_current(self) -> None:
        """Make the device/context current in the calling thread (call before CUDA work in any thread)."""

    @abc.abstractmethod
    def malloc(self, nbytes: int) -> DeviceBuffer: ...

    @abc.abstractmethod
    def pinned_empty(self, shape: Sequence[int] | int, dtype: Any = np.uint8) -> np.ndarray:
        """A page-locked host array (needed for truly asynchronous copies)."""

    @abc.abstractmethod
    def copy_htod_async(self, dst: DeviceBuffer | int, src: np.ndarray, stream: Stream) -> None:
        """Copy all of the contiguous array ``src`` to device address ``dst`` on ``stream``."""

    @abc.abstractmethod
    def copy_dtoh_async(self, dst: np.ndarray, src: DeviceBuffer | int, stream: Stream) -> None:
        """Fill the contiguous array ``dst`` from device address ``src`` on ``stream``."""

    @abc.abstractmethod
    def stream(self) -> Stream:
        """A new non-blocking stream (does not synchronise with the legacy default stream)."""

    @abc.abstractmethod
    def event(self) -> Event: ...

    @abc.abstractmethod
    def device_name(self) -> str: ...

    @abc.abstractmethod
    def compute_capability(self) -> tuple[int, int]: ...

    def close(self) -> None:
        """Release what the binding holds (pycuda's context); allocations are freed by their owners."""


def _contiguous(array: np.ndarray, what: str) -> np.ndarray:
    if not array.flags.c_contiguous:
        raise ValueError(f"{what} must be a C-contiguous array")
    return array


# ------------------------------------------------------------------ cuda-python
def import_cudart():
    """``cuda.bindings.runtime`` (cuda-python >= 12.6, required for 13), else the old ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]

        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # type: ignore[import-not-found,attr-defined]

        return cudart
    except ImportError as exc:
        raise MissingDependencyError("the Python package 'cuda-python' is needed to run TensorRT engines but is not "
                                     "installed: pip install cuda-python (or pip install pycuda, or use --cuda "
                                     "ctypes)") from exc


def _native_handle(obj: Any) -> int:
    """Address behind a cuda-python handle object (int() is deprecated from cuda-bindings 13)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle  # type: ignore[import-not-found]

        return int(get_cuda_native_handle(obj))
    except (ImportError, TypeError, AttributeError):
        return int(obj)


class CudaPythonMemory(CudaMemory):
    name = "cuda-python"

    def __init__(self, device_id: int = 0) -> None:
        self.rt = import_cudart()
        self.device_id = int(device_id)
        self._local = threading.local()
        self._h2d = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._d2h = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        count = self.check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if self.device_id >= int(count):
            raise CudaError(f"CUDA device {self.device_id} was asked for but {int(count)} device(s) are visible")
        self.make_current()
        self._pinned: dict[int, Any] = {}

    def check(self, result: Any, what: str) -> Any:
        """Unpack ``(err, *values)`` as the bindings return it; raise :class:`CudaError` on failure."""
        if isinstance(result, tuple):
            err, values = result[0], result[1:]
        else:
            err, values = result, ()
        if err != self.rt.cudaError_t.cudaSuccess:
            try:
                _, text = self.rt.cudaGetErrorString(err)
                text = text.decode() if isinstance(text, bytes) else str(text)
            except Exception:  # noqa: BLE001
                text = str(err)
            raise CudaError(f"CUDA {what} failed: {text}")
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def make_current(self) -> None:
        if getattr(self._local, "ready", False):
            return
        self.check(self.rt.cudaSetDevice(self.device_id), "cudaSetDevice")
        self._local.ready = True

    def malloc(self, nbytes: int) -> DeviceBuffer:
        nbytes = max(int(nbytes), 1)
        ptr = self.check(self.rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes} bytes)")
        address = _native_handle(ptr)
        return DeviceBuffer(address, nbytes, lambda: self.check(self.rt.cudaFree(ptr), "cudaFree"))

    def pinned_empty(self, shape: Sequence[int] | int, dtype: Any = np.uint8) -> np.ndarray:
        dtype = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        size = max(count * dtype.itemsize, 1)
        ptr = self.check(self.rt.cudaMallocHost(size), f"cudaMallocHost({size} bytes)")
        address = _native_handle(ptr)
        raw = (ctypes.c_uint8 * size).from_address(address)
        array = np.frombuffer(raw, dtype=np.uint8, count=count * dtype.itemsize).view(dtype).reshape(shape)
        holder = _PinnedHolder(self, ptr, raw)
        self._pinned[address] = holder
        # the array keeps the holder alive through numpy's base chain is not possible for
        # ctypes buffers, so the holder is kept here and freed with free_pinned()/close()
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        address = array.__array_interface__["data"][0]
        holder = self._pinned.pop(address, None)
        if holder is not None:
            holder.free()

    def copy_htod_async(self, dst: DeviceBuffer | int, src: np.ndarray, stream: Stream) -> None:
        src = _contiguous(src, "source")
        self.check(self.rt.cudaMemcpyAsync(int(dst), src.ctypes.data, src.nbytes, self._h2d, stream.raw),
                   "cudaMemcpyAsync host->device")

    def copy_dtoh_async(self, dst: np.ndarray, src: DeviceBuffer | int, stream: Stream) -> None:
        dst = _contiguous(dst, "destination")
        self.check(self.rt.cudaMemcpyAsync(dst.ctypes.data, int(src), dst.nbytes, self._d2h, stream.raw),
                   "cudaMemcpyAsync device->host")

    def stream(self) -> "_CudaPythonStream":
        flags = getattr(self.rt, "cudaStreamNonBlocking", 1)
        raw = self.check(self.rt.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")
        return _CudaPythonStream(self, raw)

    def event(self) -> "_CudaPythonEvent":
        raw = self.check(self.rt.cudaEventCreate(), "cudaEventCreate")
        return _CudaPythonEvent(self, raw)

    def _properties(self):
        return self.check(self.rt.cudaGetDeviceProperties(self.device_id), "cudaGetDeviceProperties")

    def device_name(self) -> str:
        name = self._properties().name
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
        return str(name).strip()

    def compute_capability(self) -> tuple[int, int]:
        props = self._properties()
        return int(props.major), int(props.minor)

    def close(self) -> None:
        for holder in list(self._pinned.values()):
            holder.free()
        self._pinned.clear()


class _PinnedHolder:
    def __init__(self, memory: CudaPythonMemory, ptr: Any, raw: Any) -> None:
        self.memory, self.ptr, self.raw = memory, ptr, raw

    def free(self) -> None:
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            self.memory.check(self.memory.rt.cudaFreeHost(ptr), "cudaFreeHost")


class _CudaPythonStream(Stream):
    def __init__(self, memory: CudaPythonMemory, raw: Any) -> None:
        self.memory, self.raw = memory, raw
        self.handle = _native_handle(raw)

    def synchronize(self) -> None:
        self.memory.check(self.memory.rt.cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def wait_event(self, event: Event) -> None:
        self.memory.check(self.memory.rt.cudaStreamWaitEvent(self.raw, event.raw, 0), "cudaStreamWaitEvent")  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.raw is not None:
            raw, self.raw = self.raw, None
            self.memory.check(self.memory.rt.cudaStreamDestroy(raw), "cudaStreamDestroy")


class _CudaPythonEvent(Event):
    def __init__(self, memory: CudaPythonMemory, raw: Any) -> None:
        self.memory, self.raw = memory, raw

    def record(self, stream: Stream) -> None:
        self.memory.check(self.memory.rt.cudaEventRecord(self.raw, stream.raw), "cudaEventRecord")  # type: ignore[attr-defined]

    def synchronize(self) -> None:
        self.memory.check(self.memory.rt.cudaEventSynchronize(self.raw), "cudaEventSynchronize")

    def query(self) -> bool:
        result = self.memory.rt.cudaEventQuery(self.raw)
        err = result[0] if isinstance(result, tuple) else result
        if err == self.memory.rt.cudaError_t.cudaSuccess:
            return True
        if err == self.memory.rt.cudaError_t.cudaErrorNotReady:
            return False
        self.memory.check(result, "cudaEventQuery")
        return False

    def elapsed_ms(self, start: Event) -> float:
        return float(self.memory.check(self.memory.rt.cudaEventElapsedTime(start.raw, self.raw),  # type: ignore[attr-defined]
                                       "cudaEventElapsedTime"))

    def close(self) -> None:
        if self.raw is not None:
            raw, self.raw = self.raw, None
            self.memory.check(self.memory.rt.cudaEventDestroy(raw), "cudaEventDestroy")


# ----------------------------------------------------------------------- pycuda
class PyCudaMemory(CudaMemory):
    """pycuda with the device's primary context (the one TensorRT and the runtime API use)."""

    name = "pycuda"

    def __init__(self, device_id: int = 0) -> None:
        from fcn_edge.lazy import require

        self.cuda = require("pycuda.driver", purpose="to run TensorRT engines")
        self.cuda.init()
        self.device_id = int(device_id)
        if self.device_id >= self.cuda.Device.count():
            raise CudaError(f"CUDA device {self.device_id} was asked for but {self.cuda.Device.count()} are visible")
        self.device = self.cuda.Device(self.device_id)
        self.context = self.device.retain_primary_context()
        self._local = threading.local()
        self._pushed: list[Any] = []
        self._lock = threading.Lock()
        self.make_current()

    def make_current(self) -> None:
        if getattr(self._local, "pushed", False):
            return
        self.context.push()
        self._local.pushed = True
        with self._lock:
            self._pushed.append(threading.get_ident())

    def malloc(self, nbytes: int) -> DeviceBuffer:
        allocation = self.cuda.mem_alloc(max(int(nbytes), 1))
        return DeviceBuffer(int(allocation), max(int(nbytes), 1), allocation.free)

    def pinned_empty(self, shape: Sequence[int] | int, dtype: Any = np.uint8) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, np.dtype(dtype))

    def copy_htod_async(self, dst: DeviceBuffer | int, src: np.ndarray, stream: Stream) -> None:
        self.cuda.memcpy_htod_async(int(dst), _contiguous(src, "source"), stream.raw)  # type: ignore[attr-defined]

    def copy_dtoh_async(self, dst: np.ndarray, src: DeviceBuffer | int, stream: Stream) -> None:
        self.cuda.memcpy_dtoh_async(_contiguous(dst, "destination"), int(src), stream.raw)  # type: ignore[attr-defined]

    def stream(self) -> "_PyCudaStream":
        return _PyCudaStream(self.cuda.Stream(flags=1))  # 1 = CU_STREAM_NON_BLOCKING

    def event(self) -> "_PyCudaEvent":
        return _PyCudaEvent(self.cuda.Event())

    def device_name(self) -> str:
        return str(self.device.name()).strip()

    def compute_capability(self) -> tuple[int, int]:
        major, minor = self.device.compute_capability()
        return int(major), int(minor)

    def close(self) -> None:
        if getattr(self._local, "pushed", False):
            try:
                self.cuda.Context.pop()
            except Exception:  # noqa: BLE001 - context already gone at interpreter exit
                pass
            self._local.pushed = False


class _PyCudaStream(Stream):
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.handle = int(raw.handle)

    def synchronize(self) -> None:
        self.raw.synchronize()

    def wait_event(self, event: Event) -> None:
        self.raw.wait_for_event(event.raw)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.raw = None


class _PyCudaEvent(Event):
    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def record(self, stream: Stream) -> None:
        self.raw.record(stream.raw)  # type: ignore[attr-defined]

    def synchronize(self) -> None:
        self.raw.synchronize()

    def query(self) -> bool:
        return bool(self.raw.query())

    def elapsed_ms(self, start: Event) -> float:
        return float(self.raw.time_since(start.raw))  # type: ignore[attr-defined]

    def close(self) -> None:
        self.raw = None


def _imports_cuda_python() -> bool:
    try:
        import_cudart()
    except MissingDependencyError:
        return False
    return True


def _imports_pycuda() -> bool:
    try:
        import pycuda.driver  # noqa: F401  # type: ignore[import-not-found]
    except ImportError:  # not installed, or installed without a loadable libcuda
        return False
    return True


def check_binding(binding: str) -> str:
    """``binding`` if it is one of :data:`CUDA_CHOICES`, else one sentence listing them."""
    if binding not in CUDA_CHOICES:
        raise FcnEdgeError(f"cuda binding must be one of {', '.join(CUDA_CHOICES)}, got {binding!r}")
    return binding


def choose_binding(binding: str = "auto") -> str:
    """The binding ``open_cuda`` uses: the one named, or for ``auto`` cuda-python, else pycuda, else ctypes.

    ctypes (libcudart called directly, :mod:`fcn_edge.runtime.cuda_ctypes`) comes last: an
    installed binding is a choice the user made and keeps the behaviour it had; ctypes needs
    nothing installed beyond the CUDA runtime TensorRT itself loads, so a bare JetPack runs engines.
    """
    if check_binding(binding) != "auto":
        return binding
    if _imports_cuda_python():
        return "cuda-python"
    return "pycuda" if _imports_pycuda() else "ctypes"


def open_cuda(binding: str = "auto", device_id: int = 0) -> CudaMemory:
    """The CUDA layer for ``binding``: ``auto`` (see :func:`choose_binding`), ``cuda-python``, ``pycuda`` or ``ctypes``."""
    name = choose_binding(binding)
    if name == "cuda-python":
        return CudaPythonMemory(device_id)
    if name == "pycuda":
        return PyCudaMemory(device_id)
    from fcn_edge.runtime.cuda_ctypes import CtypesCudaMemory

    return CtypesCudaMemory(device_id)
