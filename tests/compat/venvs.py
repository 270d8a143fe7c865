"""Virtual environments for tests/compat: other Pythons, a built wheel, resolved as a user's pip would.

The main suite runs in the development environment (Python 3.11, every extra, numpy and
OpenCV capped by PyTriton).  What users install is different: JetPack 5 is Python 3.8 with
numpy 1.17.4, JetPack 6 Python 3.10 with numpy 1.21.5, and ``pip install fcn-edge[onnx]``
on a bare machine gets whatever pip picks today.  These helpers build such environments
from a wheel of this checkout; conftest.py builds each one once per test run under
pytest's basetemp, and pip's own cache (``~/.cache/pip``, or ``PIP_CACHE_DIR``) makes a
repeat run fast.

Interpreters are found through ``FCN_EDGE_PY38`` / ``FCN_EDGE_PY310`` (a path), else
pyenv (``$(pyenv root)/versions/3.8.*/bin/python3.8``), else ``python3.8`` on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_ENV_VARS = {"3.8": "FCN_EDGE_PY38", "3.10": "FCN_EDGE_PY310"}
# What a wheel is built from: the package, its metadata and the README it names.
WHEEL_SOURCES = ("fcn_edge", "pyproject.toml", "README.md")


# For an offline machine (these environments come from the package index): FCN_EDGE_SKIP_VENVS=1.
skip_when_asked = pytest.mark.skipif(os.environ.get("FCN_EDGE_SKIP_VENVS") == "1", reason="FCN_EDGE_SKIP_VENVS=1")


class EnvError(AssertionError):
    """A command that builds or probes an environment failed; the message has its output."""


def _run(command: list[str], *, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-4000:]
        raise EnvError(f"{' '.join(map(str, command))} failed ({completed.returncode}):\n{output}")
    return completed


def python_version(python: str | Path) -> tuple[int, int, int]:
    out = _run([python, "-c", "import sys; print(*sys.version_info[:3])"], timeout=60).stdout
    return tuple(int(x) for x in out.split())  # type: ignore[return-value]


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            return Path(subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _patch_level(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.name))


def find_python(version: str) -> tuple[Path | None, str]:
    """The interpreter for ``version`` ("3.8", "3.10") and where it was looked for (the skip reason when None)."""
    variable = PYTHON_ENV_VARS.get(version, "FCN_EDGE_PY" + version.replace(".", ""))
    candidates: list[Path] = []
    if os.environ.get(variable):
        candidates.append(Path(os.environ[variable]))
    else:
        root = _pyenv_root()
        if root is not None:
            builds = [p for p in (root / "versions").glob(f"{version}.*") if re.fullmatch(rf"{re.escape(version)}\.\d+", p.name)]
            candidates += [b / "bin" / f"python{version}" for b in sorted(builds, key=_patch_level, reverse=True)]
        on_path = shutil.which(f"python{version}")
        if on_path:
            candidates.append(Path(on_path))
    wanted = tuple(int(x) for x in version.split("."))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK) and python_version(candidate)[:2] == wanted:
            return candidate, ""
    where = f"${variable}" if os.environ.get(variable) else f"${variable}, $(pyenv root)/versions/{version}.*, python{version} on PATH"
    return None, f"no Python {version} interpreter (looked in {where})"


def build_wheel(out: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of this checkout's package (the checkout itself gets no build/ folder)."""
    source = out / "src"
    source.mkdir(parents=True)
    for name in WHEEL_SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", out, source]
    if _has_setuptools():
        command.insert(4, "--no-build-isolation")  # the dev environment's setuptools: no download, 4 s instead of 11
    _run(command)
    wheels = list(out.glob("fcn_edge-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _outer_pip_has_python_option() -> bool:
    """pip 22.3+ installs into another interpreter's environment (``pip --python``)."""
    from importlib import metadata

    try:
        pip_version = metadata.version("pip")
    except metadata.PackageNotFoundError:
        return False
    return tuple(int(x) for x in re.findall(r"\d+", pip_version)[:2]) >= (22, 3)


def _has_setuptools() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 64


class Venv:
    """A virtual environment at ``path``; packages go in through this interpreter's pip (``pip --python``)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.python = self.path / "bin" / "python"
        self.bin = self.path / "bin"

    @classmethod
    def create(cls, path: Path, base_python: str | Path) -> "Venv":
        """A fresh environment; without pip of its own where the test interpreter's pip has ``--python`` (3 s less)."""
        _run([base_python, "-m", "venv", *(["--without-pip"] if _outer_pip_has_python_option() else []), path])
        return cls(path)

    def _pip(self) -> list[str]:
        if _outer_pip_has_python_option():
            return [sys.executable, "-m", "pip", "--python", str(self.python)]
        return [str(self.python), "-m", "pip"]

    def pip_install(self, *requirements: str | Path, timeout: float = 900) -> str:
        """``pip install`` into this environment as a user would (index, pip's cache, the machine's pip config).

        Callers pass ``--no-compile``: byte-compiling every installed file (sympy alone has
        over a thousand) doubles the time and changes nothing that is resolved or installed.
        """
        command = [*self._pip(), "install", "--disable-pip-version-check",
                   "--no-input", "--progress-bar", "off", *requirements]
        return _run(command, timeout=timeout, env=self.environ()).stdout

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment a user of this venv has: its bin/ first on PATH, no PYTHONPATH, no user site."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        env["PYTHONNOUSERSITE"] = "1"
        env["FCN_EDGE_PROGRESS"] = "0"
        env.setdefault("OMP_NUM_THREADS", "2")
        env.update(extra)
        return env

    def run(self, *args: str | Path, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        """Run ``args`` (a command of this venv's bin/, or anything on PATH) in ``cwd``; never raises on exit status."""
        return subprocess.run([str(a) for a in args], cwd=cwd, env=self.environ(**env), capture_output=True,
                              text=True, timeout=timeout)

    def versions(self, *distributions: str) -> dict[str, str | None]:
        """Installed version of each distribution (None when absent), read in the environment itself."""
        code = ("import sys, json\nfrom importlib import metadata\nout = {}\n"
                "for name in sys.argv[1:]:\n"
                "    try:\n        out[name] = metadata.version(name)\n"
                "    except metadata.PackageNotFoundError:\n        out[name] = None\n"
                "print(json.dumps(out))")
        import json

        return json.loads(_run([self.python, "-c", code, *distributions], env=self.environ()).stdout)

    def finds_module(self, name: str) -> bool:
        """Whether ``import name`` would find a module here (without importing it)."""
        code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({name!r}) else 3)"
        return subprocess.run([str(self.python), "-c", code], env=self.environ(), timeout=60).returncode == 0
