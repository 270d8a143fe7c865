"""Getting PyTriton's bundled Triton server to start on this machine, or saying why it cannot.

The trap this module exists for.  ``fcn-edge serve`` runs NVIDIA's ``tritonserver``
(shipped inside the ``nvidia-pytriton`` wheel) whose *Python backend stub* embeds a
CPython: it is linked against ``libpython3.X.so.1.0`` and the dynamic loader picks the
first one it finds, normally the *system's* (``/lib/x86_64-linux-gnu``), while the
modules it then imports (threading, multiprocessing, numpy, PyTriton's proxy) come
from the interpreter running ``fcn-edge``.  When that interpreter is another build of
the same Python version (pyenv, conda, a python.org build, uv's managed Pythons), the
C library and its standard library disagree and the model fails to load inside the
stub, e.g. ``AttributeError: '_thread.RLock' object has no attribute
'_recursion_count'`` (the stdlib of 3.11.7 calling a method the system's older 3.11
``_thread`` lacks).

The fix is to put the running interpreter's own ``LIBDIR`` (``sysconfig``) first on
``LD_LIBRARY_PATH`` before the server starts, so the stub loads the libpython that
matches the stdlib.  :func:`prepare_stub_environment` does that and checks with
``ldd`` which libpython the stub will really load; :func:`diagnose_server_failure`
turns a failed start into one sentence (libpython mismatch, port in use, missing
library, missing packages) instead of PyTriton's traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from fcn_edge.errors import FcnEdgeError


class ServeError(FcnEdgeError):
    """The Triton server cannot be started or stopped cleanly."""


@dataclass
class StubEnvironment:
    """What the Python backend stub will run with."""

    python_version: str                 # "3.11"
    interpreter: str                    # sys.executable
    libdir: str | None                  # sysconfig LIBDIR
    libpython: str | None               # the interpreter's own shared libpython, None for static builds
    ld_library_path: str                # the value to export before starting the server
    stub: str | None = None             # the stub binary for this Python version
    resolved: str | None = None         # the libpython the stub resolves to (ldd), None when unknown
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool | None:
        """True/False when ldd could tell whether the stub loads this interpreter's libpython."""
        if self.resolved is None or self.libpython is None:
            return None
        return _same_file(self.resolved, self.libpython)

    def to_dict(self) -> dict:
        return {"python": self.python_version, "interpreter": self.interpreter, "libdir": self.libdir,
                "libpython": self.libpython, "stub": self.stub, "stub_loads": self.resolved,
                "matches": self.matches, "LD_LIBRARY_PATH": self.ld_library_path, "notes": list(self.notes),
                "problems": list(self.problems)}


def interpreter_libpython() -> tuple[str | None, str | None]:
    """``(LIBDIR, path of this interpreter's shared libpython or None)``."""
    libdir = sysconfig.get_config_var("LIBDIR")
    shared = bool(sysconfig.get_config_var("Py_ENABLE_SHARED"))
    names = [sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY"),
             f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"]
    if libdir and shared:
        for name in names:
            if name and name.endswith((".so", ".so.1.0")) and (Path(libdir) / name).exists():
                return libdir, str(Path(libdir) / name)
    return libdir, None


def stub_path(python_version: str | None = None) -> Path | None:
    """PyTriton's Python backend stub for this Python version, or None when PyTriton lacks it."""
    try:
        from pytriton.utils.distribution import get_stub_path
    except ImportError:
        return None
    path = Path(get_stub_path(python_version or f"{sys.version_info.major}.{sys.version_info.minor}"))
    return path if path.exists() else None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def resolve_libpython(binary: Path, ld_library_path: str) -> str | None:
    """The libpython ``binary`` loads with ``LD_LIBRARY_PATH=ld_library_path`` (via ldd), or None."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    env = dict(os.environ, LD_LIBRARY_PATH=ld_library_path)
    try:
        out = subprocess.run([ldd, str(binary)], capture_output=True, text=True, env=env, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        match = re.match(r"\s*libpython[\d.]+\.so[\d.]*\s+=>\s+(\S+)", line)
        if match:
            return None if match.group(1) == "not" else match.group(1)
    return None


def prepare_stub_environment(environ: dict[str, str] | None = None, *, check: bool = True) -> StubEnvironment:
    """Work out the ``LD_LIBRARY_PATH`` that makes the stub load this interpreter's libpython.

    Nothing is changed here; :func:`apply_stub_environment` exports the result.
    """
    environ = os.environ if environ is None else environ
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    libdir, libpython = interpreter_libpython()
    current = [p for p in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if libpython is not None and libdir:
        paths = [libdir] + [p for p in current if os.path.realpath(p) != os.path.realpath(libdir)]
    else:
        paths = current
    env = StubEnvironment(version, sys.executable, libdir, libpython, os.pathsep.join(paths))
    stub = stub_path(version)
    env.stub = str(stub) if stub else None
    if stub is None:
        env.problems.append(f"nvidia-pytriton has no Python backend stub for Python {version}; "
                            "run fcn-edge serve with a Python it supports (3.8 to 3.13 for nvidia-pytriton 0.7)")
        return env
    if libpython is None:
        env.notes.append(f"this Python ({sys.executable}) has no shared libpython in {libdir}; the stub will load "
                         "whatever libpython the system has, which works only when it is the same build")
    if check:
        env.resolved = resolve_libpython(stub, env.ld_library_path)
        if env.resolved is None and shutil.which("ldd") is not None:
            env.problems.append(f"Triton's Python backend stub finds no libpython{version}.so.1.0: install the shared "
                                f"library (e.g. apt install libpython{version}) or use a Python built with "
                                "--enable-shared")
        elif env.matches is False:
            env.notes.append(f"the stub loads {env.resolved}, not this interpreter's {libpython}")
    return env


def apply_stub_environment(env: StubEnvironment) -> str | None:
    """Export the stub's ``LD_LIBRARY_PATH`` (PyTriton copies ``os.environ`` when it starts the server).

    Returns the previous value (None when unset) so the caller can restore it.
    """
    previous = os.environ.get("LD_LIBRARY_PATH")
    if env.ld_library_path:
        os.environ["LD_LIBRARY_PATH"] = env.ld_library_path
    return previous


def restore_ld_library_path(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = previous


def check_port_free(address: str, port: int, what: str, option: str) -> None:
    """Fail early, with the option to change, when a port cannot be bound."""
    if not 0 < int(port) < 65536:
        raise ServeError(f"{option} {port} is not a valid port (1-65535)")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, int(port)))
        except OSError as exc:
            if exc.errno in (98, 48):  # EADDRINUSE on Linux / macOS
                raise ServeError(f"the {what} port {port} on {address} is already in use (another Triton or fcn-edge "
                                 f"serve?): stop it or pass {option} with a free port") from None
            raise ServeError(f"cannot listen on {address}:{port} for {what} ({exc.strerror or exc}): "
                             "check --address and " + option) from None


def free_port(address: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


_ERROR_LINE = re.compile(r"^E\d{4} [\d:.]+\s+\d+\s+\S+\]\s*(.*)$")


def diagnose_server_failure(log_text: str, env: StubEnvironment | None, exc: BaseException | None = None) -> str:
    """One sentence saying why Triton did not start, from its log and the exception PyTriton raised."""
    text = (log_text or "") + "\n" + (str(exc) if exc is not None else "")
    version = env.python_version if env else f"{sys.version_info.major}.{sys.version_info.minor}"
    if "_recursion_count" in text or re.search(r"undefined symbol: _?Py", text):
        loaded = env.resolved if env and env.resolved else "the system's libpython"
        own = env.libpython if env and env.libpython else "none (a static build)"
        return (f"Triton's Python backend stub runs this Python's standard library on another libpython{version} "
                f"({loaded}; this interpreter's own: {own}). fcn-edge puts the interpreter's LIBDIR first on "
                "LD_LIBRARY_PATH for that; if it still fails, run with a Python built with --enable-shared "
                f"(e.g. the system python{version} in a venv)")
    match = re.search(r"(?:address already in use|Address already in use)[^\n]*", text)
    if match or re.search(r"failed to start (HTTP|GRPC|gRPC|Metrics)", text):
        return "a Triton port is already in use: pick free ports with --http-port, --grpc-port and --metrics-port"
    match = re.search(r"error while loading shared libraries: ([^:\s]+)", text)
    if match:
        return (f"the Triton server cannot load the shared library {match.group(1)}: install it "
                "(nvidia-pytriton needs glibc 2.35+, e.g. Ubuntu 22.04 or newer)")
    if "missing required packages" in text:
        return ("the Python environment lacks a package PyTriton's proxy needs (numpy, pyzmq): "
                "pip install 'fcn-edge[serve]'")
    errors = []
    for line in (log_text or "").splitlines():
        found = _ERROR_LINE.match(line.strip())
        if found and "modification time" not in found.group(1):
            errors.append(found.group(1).strip().strip('"'))
    if errors:
        return "Triton did not start: " + errors[-1].replace("\\n", " ")[:500]
    if exc is not None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"Triton did not start: {type(exc).__name__}: {first[:400]}"
    return "Triton did not start (no error in its log); run with -vv to see the server's output"


__all__ = ["ServeError", "StubEnvironment", "interpreter_libpython", "stub_path", "resolve_libpython",
           "prepare_stub_environment", "apply_stub_environment", "restore_ld_library_path", "check_port_free", "free_port",
           "diagnose_server_failure"]
