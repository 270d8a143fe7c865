"""The device half needs nothing newer than Python 3.8 (JetPack 5), checked statically with vermin.

tests/compat runs the device half's tests under Python 3.8 and 3.10; this check is the fast,
complete one: vermin reads every file of the device half (the layers tests/test_layers.py
defines: foundation, artifacts, device) plus every module ``fcn-edge build-engine`` imports
(JetPack 5 users build their engines on 3.8) and each command module the CLI registers at
start, and reports any syntax, standard-library module, function or argument newer than
3.8.  Annotations are not evaluated (every module has ``from __future__ import annotations``),
so ``list[int]`` there is fine; at run time it is not, and vermin reports it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from fcn_edge.cli import COMMANDS
from tests.test_layers import PACKAGE_ROOT, imports_of, layer_of, package_modules

# What must run on JetPack 5's Python besides the device-half layers.
ALSO_ON_38 = ("fcn_edge.engine.command", *COMMANDS.values())
VERMIN_EXCLUDES = (
    "str.decode",  # vermin misreads bytes.decode() on a ctypes result as Python 2's str.decode
    # engine/profiles.py imports it inside try/except ImportError with a 3.8 fallback (the
    # package's folder); tests/compat runs tests/engine/test_profiles.py on 3.8 through it.
    "importlib.resources.files",
)


def closure(roots, modules) -> set[str]:
    """``roots`` and every fcn_edge module they import, at any depth and any level (functions too)."""
    known = set(modules)
    seen: set[str] = set()
    todo = [r for r in roots if r in modules]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        source, is_package = modules[module]
        todo += [e.imported for e in imports_of(module, source, is_package, known) if e.imported in known]
    return seen


def files_for_38() -> list[str]:
    modules = package_modules()
    device = {m for m in modules if layer_of(m) in ("foundation", "artifacts", "device")}
    build_engine = closure(["fcn_edge.engine.command"], modules)
    wanted = device | build_engine | {m for m in ALSO_ON_38 if m in modules}
    return sorted(str(_path(m, modules[m][1])) for m in wanted)


def _path(module: str, is_package: bool):
    parts = module.split(".")[1:]
    base = PACKAGE_ROOT.joinpath(*parts)
    return base / "__init__.py" if is_package else base.with_suffix(".py")


def test_the_file_list_covers_the_device_half():
    files = files_for_38()
    names = {f.rsplit("fcn_edge/", 1)[1] for f in files}
    assert {"api.py", "cli.py", "runtime/onnxruntime_backend.py", "stream/command.py", "artifacts/sidecar.py",
            "engine/command.py", "engine/build.py", "train/command.py"} <= names
    assert "train/trainer.py" not in names  # the build half may need 3.10 (PyTorch does)


def test_device_half_needs_nothing_newer_than_python_38():
    if importlib.util.find_spec("vermin") is None:
        pytest.skip("vermin is not installed (it is in the dev extra: pip install vermin)")
    excludes = [arg for name in VERMIN_EXCLUDES for arg in ("--exclude", name)]
    completed = subprocess.run(  # vermin has no __main__: its console script's call
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "-t=3.8-", "--no-tips", "--violations", "--no-parse-comments",
         "--processes", "2", *excludes, *files_for_38()],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
