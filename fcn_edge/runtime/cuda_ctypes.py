"""The CUDA layer over the CUDA runtime library itself (``libcudart.so``), called through ctypes.

Why ctypes: a Jetson already has ``libcudart`` (JetPack installs the CUDA runtime with
TensorRT), and so do a CUDA toolkit and NVIDIA's ``nvidia-cuda-runtime`` pip wheels
(which ``pip install tensorrt`` pulls).  Calling it directly, the way NVIDIA Polygraphy's
own ``polygraphy.cuda`` module does, lets the TensorRT runner work with nothing beyond
TensorRT installed: no cuda-python wheel to match to the CUDA version, no pycuda to
build from source on the device.  The runner needs only a dozen runtime-API calls
(allocations, page-locked host memory, async copies, streams, events), all with plain C
signatures that have not changed since CUDA 11.

Where the library is looked for, in order (every attempt is kept for the error message):

1. ``$FCN_EDGE_CUDART`` (or the ``location`` argument): a libcudart file, a folder
   holding one, or a name for the system loader (``libcudart.so.12``); when set, nothing
   else is tried.
2. The folders of ``LD_LIBRARY_PATH``, then ``$CUDA_HOME``/``$CUDA_PATH``.
3. NVIDIA's pip wheels on ``sys.path``: ``nvidia/cuda_runtime/lib`` (CUDA 11/12 wheels)
   and ``nvidia/cu*/lib`` (CUDA 13 wheels).
4. The CUDA toolkit and JetPack: ``/usr/local/cuda/lib64``,
   ``/usr/local/cuda/targets/*/lib``, then the distribution's library folders.
5. The system loader: ``ctypes.util.find_library("cudart")``, ``libcudart.so``,
   ``libcudart.so.13``, ``.12``, ``.11.0``.

Error codes named here are the CUDA runtime's ``cudaError_t`` values (driver_types.h;
CUDA Runtime API, "Data types"): 34 cudaErrorStubLibrary, 35 cudaErrorInsufficientDriver,
100 cudaErrorNoDevice, 600 cudaErrorNotReady, 803 cudaErrorSystemDriverMismatch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fcn_edge.errors import MissingDependencyError
from fcn_edge.runtime.cuda_memory import CudaError, CudaMemory, DeviceBuffer, Event, Stream, _contiguous

CUDART_ENV = "FCN_EDGE_CUDART"
LOADER_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
INSTALL_HINT = ("install the CUDA runtime: JetPack's CUDA on a Jetson (sudo apt install nvidia-jetpack), the CUDA "
                "toolkit on a desktop, or `pip install nvidia-cuda-runtime-cu12` (CUDA 13: `pip install "
                "nvidia-cuda-runtime`), or set FCN_EDGE_CUDART to the libcudart file or its folder")

CUDA_SUCCESS = 0
ERROR_STUB_LIBRARY = 34
ERROR_INSUFFICIENT_DRIVER = 35
ERROR_NO_DEVICE = 100
ERROR_NOT_READY = 600
ERROR_SYSTEM_DRIVER_MISMATCH = 803
MEMCPY_HOST_TO_DEVICE = 1
MEMCPY_DEVICE_TO_HOST = 2
STREAM_NON_BLOCKING = 0x01
ATTR_CC_MAJOR = 75  # cudaDevAttrComputeCapabilityMajor
ATTR_CC_MINOR = 76  # cudaDevAttrComputeCapabilityMinor
_PROPS_BYTES = 16384  # larger than any CUDA version's cudaDeviceProp; only its first field (name) is read

_int_p = ctypes.POINTER(ctypes.c_int)
_ptr_p = ctypes.POINTER(ctypes.c_void_p)
_vp, _int, _uint, _size = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t

# name -> argument types; every function returns a cudaError_t (int) except the two error-text lookups
_SIGNATURES = {
    "cudaGetDeviceCount": [_int_p],
    "cudaRuntimeGetVersion": [_int_p],
    "cudaDriverGetVersion": [_int_p],
    "cudaSetDevice": [_int],
    "cudaDeviceGetAttribute": [_int_p, _int, _int],
    "cudaMalloc": [_ptr_p, _size],
    "cudaFree": [_vp],
    "cudaMallocHost": [_ptr_p, _size],
    "cudaFreeHost": [_vp],
    "cudaMemcpyAsync": [_vp, _vp, _size, _int, _vp],
    "cudaStreamCreateWithFlags": [_ptr_p, _uint],
    "cudaStreamSynchronize": [_vp],
    "cudaStreamWaitEvent": [_vp, _vp, _uint],
    "cudaStreamDestroy": [_vp],
    "cudaEventCreate": [_ptr_p],
    "cudaEventRecord": [_vp, _vp],
    "cudaEventSynchronize": [_vp],
    "cudaEventQuery": [_vp],
    "cudaEventElapsedTime": [ctypes.POINTER(ctypes.c_float), _vp, _vp],
    "cudaEventDestroy": [_vp],
}
_FUNCTIONS = list(_SIGNATURES) + ["cudaGetErrorName", "cudaGetErrorString", "cudaGetDeviceProperties"]


# ------------------------------------------------------------------ discovery
Tried = List[Tuple[str, str]]  # (file, folder or loader name; why it was not used), in the order tried


def summarise(tried: Tried) -> str:
    """``tried`` grouped by reason, in first-seen order, for a one-sentence message."""
    groups: Dict[str, List[str]] = {}
    for target, reason in tried:
        groups.setdefault(reason, []).append(target)
    return "; ".join(f"{', '.join(targets)} ({reason})" for reason, targets in groups.items())


class Cudart:
    """A loaded libcudart with typed functions: ``path`` (what was loaded) and ``tried`` (every attempt)."""

    def __init__(self, lib: ctypes.CDLL, path: str, tried: Tried) -> None:
        self.lib, self.path, self.tried = lib, path, tried
        for name, argtypes in _SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes, function.restype = argtypes, ctypes.c_int
        for name in ("cudaGetErrorName", "cudaGetErrorString"):
            function = getattr(lib, name)
            function.argtypes, function.restype = [_int], ctypes.c_char_p
        self.properties_function = self._properties_function()

    def _properties_function(self) -> Any:
        """``cudaGetDeviceProperties_v2`` where exported (CUDA 12), else ``cudaGetDeviceProperties``.

        Both write a ``cudaDeviceProp`` whose layout changed between versions, but whose
        first field has always been ``char name[256]``: only that field is read.
        """
        function = getattr(self.lib, "cudaGetDeviceProperties_v2", None) or self.lib.cudaGetDeviceProperties
        function.argtypes, function.restype = [_vp, _int], ctypes.c_int
        return function

    def error_name(self, code: int) -> str:
        name = self.lib.cudaGetErrorName(int(code))
        return name.decode(errors="replace") if name else f"cudaError {code}"

    def error_text(self, code: int) -> str:
        text = self.lib.cudaGetErrorString(int(code))
        return text.decode(errors="replace") if text else "unknown error"

    def check(self, code: int, what: str) -> None:
        """Raise :class:`CudaError` (one sentence) unless ``code`` is cudaSuccess."""
        if code != CUDA_SUCCESS:
            raise CudaError(f"CUDA {what} failed: {self.error_text(code)} ({self.error_name(code)}, {self.path})")

    def version(self, function: str) -> int:
        """``cudaRuntimeGetVersion``/``cudaDriverGetVersion`` as 1000*major + 10*minor; 0 = no driver."""
        value = ctypes.c_int(0)
        if getattr(self.lib, function)(ctypes.byref(value)) != CUDA_SUCCESS:
            return 0
        return int(value.value)


def _folders_from_environment() -> List[str]:
    folders = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(variable)
        if root:
            folders += [os.path.join(root, "lib64"), os.path.join(root, "lib")]
    return folders


def _wheel_folders() -> List[str]:
    """Where NVIDIA's ``nvidia-cuda-runtime`` wheels put libcudart, for every folder on ``sys.path``."""
    folders: List[str] = []
    for base in sys.path:
        nvidia = os.path.join(base or ".", "nvidia")
        if os.path.isdir(nvidia):
            folders.append(os.path.join(nvidia, "cuda_runtime", "lib"))  # CUDA 11/12 wheels
            folders += sorted(glob.glob(os.path.join(nvidia, "cu[0-9]*", "lib")), reverse=True)  # CUDA 13+ wheels
    return folders


def _system_folders() -> List[str]:
    """The CUDA toolkit's and JetPack's folders (JetPack: /usr/local/cuda/targets/aarch64-linux/lib)."""
    folders = ["/usr/local/cuda/lib64"] + sorted(glob.glob("/usr/local/cuda/targets/*/lib"))
    return folders + ["/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"]


def candidate_folders() -> List[str]:
    """Folders searched for ``libcudart.so*``, in order, each once."""
    seen: List[str] = []
    for folder in _folders_from_environment() + _wheel_folders() + _system_folders():
        folder = os.path.normpath(folder)
        if folder not in seen:
            seen.append(folder)
    return seen


def _version_key(name: str) -> tuple:
    """Order libcudart files in one folder: ``libcudart.so.13`` before ``.13.0.96``, versions before the bare name."""
    numbers = [int(n) for n in re.findall(r"\d+", name[len("libcudart.so"):])]
    return (not numbers, -(numbers[0] if numbers else 0), len(numbers))


def libraries_in(folder: str) -> List[str]:
    """``libcudart.so*`` files in ``folder`` (not ``libcudart_static.a``), best first."""
    names = [os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(folder), "libcudart.so*"))]
    return [os.path.join(folder, n) for n in sorted(names, key=_version_key)]


class _DlInfo(ctypes.Structure):
    """glibc's ``Dl_info``, filled by ``dladdr``."""

    _fields_ = [("fname", ctypes.c_char_p), ("fbase", _vp), ("sname", ctypes.c_char_p), ("saddr", _vp)]


def _try_load(target: str, tried: Tried) -> Optional[Cudart]:
    """Load ``target`` (a path or a loader name); record why not in ``tried``."""
    try:
        lib = ctypes.CDLL(target)
    except OSError as exc:
        reason = "not found" if "No such file" in str(exc) or "cannot open" in str(exc) else str(exc)
        tried.append((target, reason))
        return None
    missing = [name for name in _FUNCTIONS if not hasattr(lib, name)]
    if missing:
        tried.append((target, f"not a CUDA runtime of version 11 or later: no {missing[0]}"))
        return None
    return Cudart(lib, _loaded_file(lib, target), tried)


def _loaded_file(lib: ctypes.CDLL, target: str) -> str:
    """The file the loader picked for ``target`` (``dladdr`` on one of its functions), for messages."""
    if os.path.isabs(target):
        return target
    info = _DlInfo()
    try:
        dladdr = ctypes.CDLL(None).dladdr  # glibc; libdl's symbol is in the process on older glibc too
        address = ctypes.cast(lib.cudaGetDeviceCount, _vp)
        if dladdr(address, ctypes.byref(info)) and info.fname:
            return os.fsdecode(info.fname)
    except (AttributeError, OSError):
        pass
    return target


def _search_folder(folder: str, tried: Tried) -> Optional[Cudart]:
    if not os.path.isdir(folder):
        tried.append((folder, "no such folder"))
        return None
    files = libraries_in(folder)
    if not files:
        tried.append((folder, "no libcudart.so* in it"))
    for path in files:
        found = _try_load(path, tried)
        if found is not None:
            return found
    return None


def _search_loader(tried: Tried) -> Optional[Cudart]:
    """Ask the system loader (ld.so.cache, LD_LIBRARY_PATH, rpath) by name."""
    names = list(LOADER_NAMES)
    found = ctypes.util.find_library("cudart")
    if found and found not in names:
        names.insert(0, found)
    for name in names:
        library = _try_load(name, tried)
        if library is not None:
            return library
    return None


def _search_location(location: str, tried: Tried) -> Optional[Cudart]:
    """Only the file or folder the user named (``FCN_EDGE_CUDART`` or ``location``)."""
    if os.path.isdir(location):
        return _search_folder(location, tried)
    if os.sep not in location:  # a name for the system loader, e.g. libcudart.so.12
        return _try_load(location, tried)
    if not os.path.exists(location):
        tried.append((location, "no such file or folder"))
        return None
    return _try_load(location, tried)


def load_cudart(location: Optional[str] = None) -> Cudart:
    """Find and load libcudart (see the module docstring for the order); one sentence if there is none.

    ``location`` (else ``$FCN_EDGE_CUDART``) restricts the search to that file or folder.
    """
    tried: Tried = []
    location = location or os.environ.get(CUDART_ENV) or None
    if location:
        found = _search_location(os.path.expanduser(location), tried)
        where = f"{location} (from {CUDART_ENV})" if location == os.environ.get(CUDART_ENV) else location
    else:
        found = None
        for folder in candidate_folders():
            found = _search_folder(folder, tried)
            if found is not None:
                break
        found = found or _search_loader(tried)
        where = "the usual places"
    if found is None:
        raise MissingDependencyError(f"no CUDA runtime library (libcudart) was found in {where} to run TensorRT "
                                     f"engines; tried {summarise(tried)}: {INSTALL_HINT}")
    return found


# ------------------------------------------------------------------- errors
def version_text(version: int) -> str:
    """CUDA's integer version (13000) as people write it (13.0)."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def _driver_missing(cudart: Cudart) -> str:
    runtime = version_text(cudart.version("cudaRuntimeGetVersion"))
    return (f"no NVIDIA driver is loaded: {cudart.path} (CUDA runtime {runtime}) answered cudaGetDeviceCount with "
            f"cudaErrorInsufficientDriver and reports driver version 0; install the NVIDIA driver "
            f"(on a Jetson it comes with JetPack) or run on a machine where `nvidia-smi` lists a GPU")


def _driver_too_old(cudart: Cudart, driver: int) -> str:
    runtime = version_text(cudart.version("cudaRuntimeGetVersion"))
    return (f"the NVIDIA driver here supports CUDA {version_text(driver)} but {cudart.path} is CUDA runtime "
            f"{runtime} (cudaErrorInsufficientDriver); update the driver, or set {CUDART_ENV} to a libcudart no "
            f"newer than the driver (the CUDA version your TensorRT was built for)")


def startup_error(cudart: Cudart, code: int) -> CudaError:
    """The one sentence for a failed ``cudaGetDeviceCount``: the usual reasons a machine cannot run CUDA."""
    if code == ERROR_INSUFFICIENT_DRIVER:
        driver = cudart.version("cudaDriverGetVersion")
        return CudaError(_driver_missing(cudart) if driver == 0 else _driver_too_old(cudart, driver))
    if code == ERROR_STUB_LIBRARY:
        return CudaError(f"{cudart.path} reached the CUDA driver stub library (cudaErrorStubLibrary: a libcuda.so "
                         f"from a toolkit's lib64/stubs folder), not a real NVIDIA driver; take the stubs folder out "
                         f"of LD_LIBRARY_PATH and install the NVIDIA driver")
    if code == ERROR_NO_DEVICE:
        return CudaError(f"no CUDA-capable GPU is visible to {cudart.path} (cudaErrorNoDevice); check that "
                         f"`nvidia-smi` lists one and that CUDA_VISIBLE_DEVICES does not hide it")
    if code == ERROR_SYSTEM_DRIVER_MISMATCH:
        return CudaError("the NVIDIA kernel module and the driver library have different versions "
                         "(cudaErrorSystemDriverMismatch); reboot, or reinstall the NVIDIA driver")
    return CudaError(f"CUDA cudaGetDeviceCount failed: {cudart.error_text(code)} ({cudart.error_name(code)}, "
                     f"{cudart.path}); check that `nvidia-smi` works")


def device_count(cudart: Cudart) -> int:
    """The number of visible GPUs; a missing driver or GPU is a one-sentence :class:`CudaError`."""
    count = ctypes.c_int(0)
    code = cudart.lib.cudaGetDeviceCount(ctypes.byref(count))
    if code != CUDA_SUCCESS:
        raise startup_error(cudart, code)
    return int(count.value)


# ------------------------------------------------------------------- layer
def _new_handle(create: Callable[..., int], what: str, cudart: Cudart, *args: Any) -> ctypes.c_void_p:
    """Call a ``cudaXxxCreate(&handle, ...)`` / ``cudaMalloc(&ptr, ...)`` function and return the handle."""
    handle = ctypes.c_void_p()
    cudart.check(create(ctypes.byref(handle), *args), what)
    return handle


class CtypesCudaMemory(CudaMemory):
    """The runner's CUDA layer over libcudart itself: nothing to install beyond what TensorRT needs."""

    name = "ctypes"

    def __init__(self, device_id: int = 0, location: Optional[str] = None) -> None:
        self._attach(load_cudart(location), device_id)
        count = device_count(self.rt)
        if self.device_id >= count:
            raise CudaError(f"CUDA device {self.device_id} was asked for but {count} device(s) are visible")
        self.make_current()

    def _attach(self, cudart: Cudart, device_id: int) -> None:
        """Bind to a loaded library without touching the device (the tests drive every call through it)."""
        self.rt = cudart
        self.device_id = int(device_id)
        self._local = threading.local()
        self._pinned: dict = {}
        self._lock = threading.Lock()

    @property
    def library_path(self) -> str:
        return self.rt.path

    def make_current(self) -> None:
        """``cudaSetDevice`` once per thread (the runtime's current device is per thread)."""
        if getattr(self._local, "ready", False):
            return
        self.rt.check(self.rt.lib.cudaSetDevice(self.device_id), f"cudaSetDevice({self.device_id})")
        self._local.ready = True

    def malloc(self, nbytes: int) -> DeviceBuffer:
        nbytes = max(int(nbytes), 1)
        ptr = _new_handle(self.rt.lib.cudaMalloc, f"cudaMalloc({nbytes} bytes)", self.rt, nbytes)
        return DeviceBuffer(ptr.value or 0, nbytes, lambda: self.rt.check(self.rt.lib.cudaFree(ptr), "cudaFree"))

    def pinned_empty(self, shape: Sequence[int] | int, dtype: Any = np.uint8) -> np.ndarray:
        """A numpy view of ``cudaMallocHost`` memory, freed by :meth:`free_pinned` or :meth:`close`."""
        dtype = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
        size = max(nbytes, 1)
        ptr = _new_handle(self.rt.lib.cudaMallocHost, f"cudaMallocHost({size} bytes)", self.rt, size)
        raw = (ctypes.c_uint8 * size).from_address(ptr.value or 0)
        array = np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)
        with self._lock:
            self._pinned[ptr.value] = ptr
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        with self._lock:
            ptr = self._pinned.pop(array.__array_interface__["data"][0], None)
        if ptr is not None:
            self.rt.check(self.rt.lib.cudaFreeHost(ptr), "cudaFreeHost")

    def copy_htod_async(self, dst: DeviceBuffer | int, src: np.ndarray, stream: Stream) -> None:
        src = _contiguous(src, "source")
        code = self.rt.lib.cudaMemcpyAsync(int(dst), src.ctypes.data, src.nbytes, MEMCPY_HOST_TO_DEVICE,
                                           stream.handle)
        self.rt.check(code, "cudaMemcpyAsync host->device")

    def copy_dtoh_async(self, dst: np.ndarray, src: DeviceBuffer | int, stream: Stream) -> None:
        dst = _contiguous(dst, "destination")
        code = self.rt.lib.cudaMemcpyAsync(dst.ctypes.data, int(src), dst.nbytes, MEMCPY_DEVICE_TO_HOST,
                                           stream.handle)
        self.rt.check(code, "cudaMemcpyAsync device->host")

    def stream(self) -> "_CtypesStream":
        handle = _new_handle(self.rt.lib.cudaStreamCreateWithFlags, "cudaStreamCreateWithFlags", self.rt,
                             STREAM_NON_BLOCKING)
        return _CtypesStream(self.rt, handle)

    def event(self) -> "_CtypesEvent":
        return _CtypesEvent(self.rt, _new_handle(self.rt.lib.cudaEventCreate, "cudaEventCreate", self.rt))

    def device_name(self) -> str:
        buffer = ctypes.create_string_buffer(_PROPS_BYTES)
        code = self.rt.properties_function(buffer, self.device_id)
        self.rt.check(code, "cudaGetDeviceProperties")
        return buffer.raw[:256].split(b"\0", 1)[0].decode(errors="replace").strip()

    def _attribute(self, attribute: int) -> int:
        value = ctypes.c_int(0)
        code = self.rt.lib.cudaDeviceGetAttribute(ctypes.byref(value), attribute, self.device_id)
        self.rt.check(code, f"cudaDeviceGetAttribute({attribute})")
        return int(value.value)

    def compute_capability(self) -> tuple[int, int]:
        return self._attribute(ATTR_CC_MAJOR), self._attribute(ATTR_CC_MINOR)

    def close(self) -> None:
        with self._lock:
            pointers, self._pinned = list(self._pinned.values()), {}
        for ptr in pointers:
            self.rt.check(self.rt.lib.cudaFreeHost(ptr), "cudaFreeHost")


class _CtypesStream(Stream):
    def __init__(self, rt: Cudart, handle: ctypes.c_void_p) -> None:
        self.rt, self.raw = rt, handle
        self.handle = int(handle.value or 0)

    def synchronize(self) -> None:
        self.rt.check(self.rt.lib.cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def wait_event(self, event: Event) -> None:
        code = self.rt.lib.cudaStreamWaitEvent(self.raw, event.raw, 0)  # type: ignore[attr-defined]
        self.rt.check(code, "cudaStreamWaitEvent")

    def close(self) -> None:
        if self.raw is not None:
            raw, self.raw = self.raw, None
            self.rt.check(self.rt.lib.cudaStreamDestroy(raw), "cudaStreamDestroy")


class _CtypesEvent(Event):
    def __init__(self, rt: Cudart, handle: ctypes.c_void_p) -> None:
        self.rt, self.raw = rt, handle

    def record(self, stream: Stream) -> None:
        self.rt.check(self.rt.lib.cudaEventRecord(self.raw, stream.handle), "cudaEventRecord")

    def synchronize(self) -> None:
        self.rt.check(self.rt.lib.cudaEventSynchronize(self.raw), "cudaEventSynchronize")

    def query(self) -> bool:
        code = self.rt.lib.cudaEventQuery(self.raw)
        if code == ERROR_NOT_READY:
            return False
        self.rt.check(code, "cudaEventQuery")
        return True

    def elapsed_ms(self, start: Event) -> float:
        value = ctypes.c_float(0.0)
        code = self.rt.lib.cudaEventElapsedTime(ctypes.byref(value), start.raw, self.raw)  # type: ignore[attr-defined]
        self.rt.check(code, "cudaEventElapsedTime")
        return float(value.value)

    def close(self) -> None:
        if self.raw is not None:
            raw, self.raw = self.raw, None
            self.rt.check(self.rt.lib.cudaEventDestroy(raw), "cudaEventDestroy")
