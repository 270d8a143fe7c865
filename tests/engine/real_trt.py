"""TensorRT's own Python API, per version, read from NVIDIA's genuine binding wheels.

No TensorRT library can be installed here, but the Python bindings alone can be loaded:
PyPI serves NVIDIA's binding wheels (``tensorrt-bindings``, ``tensorrt-cu12-bindings``,
about 1 MB each), and their ``tensorrt.so`` needs only about a dozen factory functions
from ``libnvinfer``/``libnvonnxparser``/``libnvinfer_plugin`` to *load*.  This module:

1. downloads one wheel per TensorRT API family once (``pip download --no-deps``) into a
   cache folder (``$FCN_EDGE_TEST_CACHE`` or ``~/.cache/fcn-edge-tests``), and unpacks it;
2. reads what ``tensorrt.so`` needs (``readelf -d`` NEEDED, ``nm -D --undefined-only``),
   compiles with ``cc`` a stub library exporting those symbols (each returns null) under
   every NEEDED ``libnv*`` soname;
3. imports the REAL module in a subprocess (two ``tensorrt`` modules cannot share a
   process) with ``LD_LIBRARY_PATH`` at the stub, and dumps as JSON every class and enum:
   its public names, which are methods (with pybind11's signatures: parameter names,
   defaults, keyword use), which are properties and whether they are writable, and the
   enum members with their values.  Nothing in TensorRT is *called*: the stubs would
   return null.  The dump is cached per version beside the wheel.

What such a dump proves and does not: see fcn_edge/engine/README.md ("What the real
bindings check").  For 8.5, which has no wheel, ``tests/engine/data/trt-8.5-api.json`` is
derived from NVIDIA's binding source by ``tests/engine/trt_api_from_source.py``.

:func:`api_facts` raises :class:`Unavailable` (tests skip with its reason) when pip,
the package index or the C compiler is missing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# API family -> (PyPI package, version).  11.x comes in cu12 and cu13 builds of the same
# bindings; cu12 is taken (the Python API does not depend on the CUDA major).
WHEELS: dict[str, tuple[str, str]] = {
    "8.6": ("tensorrt-bindings", "8.6.1"),
    "10.0": ("tensorrt-cu12-bindings", "10.0.1"),
    "10.3": ("tensorrt-cu12-bindings", "10.3.0"),
    "10.8": ("tensorrt-cu12-bindings", "10.8.0.43"),
    "10.16": ("tensorrt-cu12-bindings", "10.16.1.11"),
    "11.0": ("tensorrt-cu12-bindings", "11.0.0.114"),
    "11.4": ("tensorrt-cu12-bindings", "11.4.0.106"),
}
DATA = Path(__file__).parent / "data"
# Families whose facts come from the binding source (no wheel exists), committed as JSON.
FROM_SOURCE = {"8.5": DATA / "trt-8.5-api.json"}
FAMILIES = ("8.5",) + tuple(WHEELS)
DUMP_FORMAT = 1


class Unavailable(Exception):
    """The real bindings cannot be had here (no network, no pip, no compiler); tests skip with this."""


def cache_root() -> Path:
    """Where wheels and dumps are kept between runs (``$FCN_EDGE_TEST_CACHE`` overrides)."""
    base = os.environ.get("FCN_EDGE_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fcn-edge-tests")
    return Path(base) / "trt-bindings"


def family_of(version: str) -> str:
    """The API family whose facts stand for TensorRT ``version`` (the newest family not above it)."""
    wanted = _key(version)
    best = None
    for family in FAMILIES:
        if _key(family) <= wanted[:2] + (10**9,) * 2:
            if best is None or _key(family) > _key(best):
                best = family
    if best is None:
        raise ValueError(f"no TensorRT API family for {version}")
    return best


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(version))[:4])


@functools.lru_cache(maxsize=None)
def api_facts(family: str) -> dict:
    """The API facts of one family: from the committed source-derived JSON (8.5) or the real wheel.

    Cached per process; callers must not change the returned dict.
    """
    if family in FROM_SOURCE:
        return json.loads(FROM_SOURCE[family].read_text())
    return live_facts(family)


def live_facts(family: str) -> dict:
    """Download (once), stub, import and dump the real bindings of ``family``; cached as JSON."""
    package, version = WHEELS[family]
    folder = cache_root() / f"{package}-{version}-{python_tag()}"
    dump = folder / "api.json"
    try:
        if dump.is_file():
            data = json.loads(dump.read_text())
            if data.get("format") == DUMP_FORMAT:
                return data
        unpacked = _unpacked_wheel(package, version, folder)
        stub_dir = _stub_libraries(unpacked / "tensorrt_bindings" / "tensorrt.so", folder / "stub")
    except OSError as exc:
        raise Unavailable(f"the cache folder {folder} is not usable: {exc}") from None
    data = _dump(unpacked, stub_dir)
    data.update(format=DUMP_FORMAT, family=family,
                source=f"PyPI wheel {package}=={version} ({python_tag()}), imported with stub libnvinfer")
    _write_atomically(dump, json.dumps(data, sort_keys=True))
    return data


def python_tag() -> str:
    return f"cp{sys.version_info[0]}{sys.version_info[1]}"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


# After one failed download in this process, the others are not tried (no network: skip fast).
_download_failure: list[str] = []


def _unpacked_wheel(package: str, version: str, folder: Path) -> Path:
    unpacked = folder / "unpacked"
    if (unpacked / "tensorrt_bindings" / "tensorrt.so").is_file():
        return unpacked
    if _download_failure:
        raise Unavailable(f"{package}=={version} not tried: an earlier download in this run failed ({_download_failure[0]})")
    try:
        return _download(package, version, folder, unpacked)
    except Unavailable as exc:
        _download_failure.append(str(exc))
        raise


def _download(package: str, version: str, folder: Path, unpacked: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        try:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                   "--disable-pip-version-check", "--retries", "1", "--timeout", "30", "-q", "-d", tmp,
                                   f"{package}=={version}"], capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"cannot run pip to download {package}=={version}: {exc}") from None
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel for this Python/platform"])[-1]
            raise Unavailable(f"cannot download {package}=={version} ({python_tag()}): {last}")
        staging = Path(tmp) / "unpacked"
        with zipfile.ZipFile(wheels[0]) as archive:
            archive.extractall(staging)
        if unpacked.exists():
            shutil.rmtree(unpacked, ignore_errors=True)
        try:
            os.replace(staging, unpacked)
        except OSError:
            if not (unpacked / "tensorrt_bindings" / "tensorrt.so").is_file():
                raise  # not another process finishing the same unpacking first
    return unpacked


def _tool_output(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"`{' '.join(args[:2])}` failed (binutils needed to read tensorrt.so): {exc}") from None


def needed_libraries(module: Path) -> list[str]:
    """The NVIDIA sonames ``tensorrt.so`` links against (``libnvinfer.so.10`` ...)."""
    return re.findall(r"\[(libnv[^\]]+)\]", _tool_output(["readelf", "-d", str(module)]))


def needed_symbols(module: Path) -> list[str]:
    """Unversioned undefined symbols that are not Python's: what the NVIDIA libraries must export."""
    symbols = []
    for line in _tool_output(["nm", "-D", "--undefined-only", str(module)]).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] and not re.match(r"_?Py", parts[1]):
            symbols.append(parts[1])
    return symbols


def _stub_libraries(module: Path, out: Path) -> Path:
    """A C library exporting every symbol ``module`` needs (all return null), under each NEEDED soname."""
    names = needed_libraries(module)
    if all((out / name).is_file() for name in names):
        return out
    symbols = needed_symbols(module)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise Unavailable("no C compiler (cc) to build the stub libnvinfer the real bindings load against")
    out.mkdir(parents=True, exist_ok=True)
    source = out / f"stub.{os.getpid()}.c"
    source.write_text("/* Stand-ins for the TensorRT symbols tensorrt.so links to; never called. */\n"
                      + "".join(f"void *{name}(void) {{ return 0; }}\n" for name in symbols))
    for name in names:
        partial = out / f"{name}.{os.getpid()}.tmp"
        try:
            subprocess.run([compiler, "-shared", "-fPIC", "-o", str(partial), str(source), f"-Wl,-soname,{name}"],
                           capture_output=True, check=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            raise Unavailable(f"the C compiler could not build the stub {name}: {exc}") from None
        os.replace(partial, out / name)
    return out


def _dump(unpacked: Path, stub_dir: Path) -> dict:
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(stub_dir), os.environ.get("LD_LIBRARY_PATH")])),
               PYTHONPATH=str(unpacked), PYTHONWARNINGS="ignore")
    script = Path(__file__).with_name("trt_api_dump.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"the real TensorRT bindings in {unpacked} did not import against the stub: "
                           + done.stderr.strip()[-1500:])
    return json.loads(done.stdout)
