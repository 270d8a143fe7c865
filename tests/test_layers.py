"""The dependency rule between fcn-edge's layers, read from the import graph of every module.

fcn-edge has two halves (DEVELOPING.md, "Layers"): the device half runs models on a robot,
the build half makes them.  A robot installs the device half only, so it must never reach
the build half -- not at import time (tests/runtime/test_imports.py checks that in a fresh
interpreter) and not inside a function either, where an import only fails on the device,
in the field, the first time that code path runs.  This test parses every ``.py`` under
``fcn_edge/`` with :mod:`ast`, collects every ``import``/``from ... import`` anywhere in the
file (module level, functions, methods, ``try`` blocks; relative imports resolved), and
checks each edge against the layer of both ends:

* foundation (``errors``, ``lazy``, ``fileio``, and ``fcn_edge`` itself as the holder of
  ``__version__``): imports only other foundation modules (and any library: ``lazy`` is how
  others import libraries).  The package root's own imports are judged as the device half's
  (its ``Segmenter`` comes lazily from ``api``).
* artifacts (``fcn_edge/artifacts/``): only the standard library, numpy, the foundation
  and itself; never torch, onnx, onnxruntime or tensorrt, at any level.
* device half (``runtime/``, ``stream/``, ``serve/``, ``bench/``, ``ros2/``, ``api``, ``cli``,
  ``cliargs``, ``doctor``, ``info``, ``imaging``, ``metrics``, ``progress``, ``__main__``):
  foundation, artifacts and the device half; nothing of the build half, except the edges in
  :data:`ALLOWED`, and those only inside a function.
* build half (``models/``, ``data/``, ``train/``, ``eval/``, ``export/``, ``calib/``,
  ``engine/``, ``demo/``, ``checkpoint``): anything.

A module in none of these lists fails the test: a new module must be placed in a layer.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "fcn_edge"

FOUNDATION = ("fcn_edge", "fcn_edge.errors", "fcn_edge.lazy", "fcn_edge.fileio")
ARTIFACTS = ("fcn_edge.artifacts",)
DEVICE = ("fcn_edge.runtime", "fcn_edge.stream", "fcn_edge.serve", "fcn_edge.bench", "fcn_edge.ros2",
          "fcn_edge.api", "fcn_edge.cli", "fcn_edge.cliargs", "fcn_edge.doctor", "fcn_edge.info", "fcn_edge.imaging",
          "fcn_edge.metrics", "fcn_edge.progress", "fcn_edge.threads", "fcn_edge.__main__")
BUILD = ("fcn_edge.models", "fcn_edge.data", "fcn_edge.train", "fcn_edge.eval", "fcn_edge.export", "fcn_edge.calib",
         "fcn_edge.engine", "fcn_edge.demo", "fcn_edge.checkpoint")

# Libraries the artifact layer may import besides the standard library.
ARTIFACT_LIBRARIES = ("numpy",)
# Never in the artifact layer, at any level (named for the message; the rule above already refuses them).
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "tensorrt", "pycuda", "cuda", "modelopt")

# (importer, imported) edges from the device half into the build half that are allowed, inside a function only.
ALLOWED = {
    # A .pt checkpoint *is* the build half's torch model: running one needs the model code and the
    # export's DeployableFCN (the same modules the ONNX graph is made of, so .pt and .onnx agree).
    # Imported in TorchRunner.__init__, reached only when a .pt file is opened (torch is needed then anyway).
    ("fcn_edge.runtime.torch_backend", "fcn_edge.checkpoint"): "the torch backend loads .pt checkpoints",
    ("fcn_edge.runtime.torch_backend", "fcn_edge.export.graph"): "the torch backend runs DeployableFCN",
    # `fcn-edge info model.pt` describes a checkpoint: reading one needs torch and the checkpoint format.
    ("fcn_edge.info", "fcn_edge.checkpoint"): "info on a .pt checkpoint reads it with the checkpoint module",
}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str        # the fcn_edge module (or package) named, or the library's full dotted name
    line: int
    in_function: bool


def layer_of(module: str) -> str | None:
    """``"foundation"``, ``"artifacts"``, ``"device"``, ``"build"`` or None (unplaced)."""
    if module in FOUNDATION:
        return "foundation"
    for name, prefixes in (("artifacts", ARTIFACTS), ("device", DEVICE), ("build", BUILD)):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_in_functions(tree: ast.AST) -> set[int]:
    """The ``id`` of each import statement inside a function, method or lambda (at any depth)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    inside.add(id(child))
    return inside


def imports_of(module: str, source: str, is_package: bool, known: set[str]) -> list[Edge]:
    """Every import in ``source``, as edges; names inside fcn_edge resolved to the module they name."""
    tree = ast.parse(source)
    in_function = _imports_in_functions(tree)
    package = module if is_package else module.rpartition(".")[0]
    edges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from fcn_edge.export import graph` names the module graph; `from X import name` names X.
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                       for alias in node.names]
        else:
            continue
        edges += [Edge(module, target, node.lineno, id(node) in in_function) for target in targets]
    return edges


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Every broken rule in ``modules`` (name -> (source, is_package)), one sentence each."""
    known = set(modules)
    problems = []
    for module, (source, is_package) in sorted(modules.items()):
        # The package root is foundation as a target (``from fcn_edge import __version__``) but, as an
        # importer, it is the device half's front door (``fcn_edge.Segmenter`` comes from api.py).
        layer = "device" if module == "fcn_edge" else layer_of(module)
        if layer is None:
            problems.append(f"{module} is in no layer: add it to FOUNDATION, ARTIFACTS, DEVICE or BUILD "
                            "in tests/test_layers.py (and DEVELOPING.md's layout)")
            continue
        for edge in dict.fromkeys(imports_of(module, source, is_package, known)):  # one line per import
            problem = _judge(layer, edge)
            if problem:
                where = "inside a function" if edge.in_function else "at module level"
                problems.append(f"{module} (line {edge.line}, {where}) imports {edge.imported}: {problem}")
    return problems


def _judge(layer: str, edge: Edge) -> str | None:
    target = edge.imported
    top = target.split(".")[0]
    if top != "fcn_edge":
        if layer == "artifacts" and top not in ARTIFACT_LIBRARIES and not _is_stdlib(top):
            heavy = " (a heavy library)" if top in HEAVY else ""
            return f"the artifact layer imports only the standard library and numpy, not {top}{heavy}"
        return None
    target_layer = layer_of(target)
    if target_layer is None:
        return "names no fcn_edge module in a layer (misspelt, or an unplaced module)"
    if layer == "foundation" and target_layer != "foundation":
        return f"foundation modules import only each other, not the {target_layer} layer"
    if layer == "artifacts" and target_layer not in ("foundation", "artifacts"):
        return f"the artifact layer imports only the foundation and itself, not the {target_layer} layer"
    if layer == "device" and target_layer == "build":
        reason = ALLOWED.get((edge.importer, target))
        if reason and edge.in_function:
            return None
        if reason:
            return f"allowed only inside the function that needs it ({reason}), not at module level"
        return "the device half never reaches the build half (not even inside a function)"
    return None


def _is_stdlib(name: str) -> bool:
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # Python < 3.10: judge by where the module lives
        pytest.skip("needs sys.stdlib_module_names (Python 3.10+) to tell the standard library apart")
    return name in names or name == "__future__"


@functools.lru_cache(maxsize=None)
def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, tuple[str, bool]]:
    """Every module of the package: name -> (source, is_package).  Read once per test run."""
    return {module_name(path, root): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
            for path in sorted(root.rglob("*.py")) if "__pycache__" not in path.parts}


# ---------------------------------------------------------------------------- the package itself

def test_the_package_keeps_its_layers():
    modules = package_modules()
    assert len(modules) > 100 and "fcn_edge.artifacts.sidecar" in modules  # read the real tree
    problems = violations(modules)
    assert not problems, "\n".join(problems)


def test_the_allowed_exceptions_still_exist():
    """An exception whose import is gone is removed from ALLOWED, so it cannot silently cover a new one."""
    modules = package_modules()
    edges = {(e.importer, e.imported) for name, (source, pkg) in modules.items()
             for e in imports_of(name, source, pkg, set(modules))}
    assert set(ALLOWED) <= edges, set(ALLOWED) - edges


# ---------------------------------------------------------------------------- the checker bites

def _module(source: str, is_package: bool = False) -> tuple[str, bool]:
    return source, is_package


def test_a_build_import_inside_a_device_function_is_reported():
    problems = violations({
        "fcn_edge.runtime.sneaky": _module("import numpy\n\n"
                                           "def load(path):\n"
                                           "    if path:\n"
                                           "        from fcn_edge.data.transforms import resize_for_network\n"
                                           "    return path\n"),
        "fcn_edge.data.transforms": _module(""),
    })
    assert len(problems) == 1
    assert "fcn_edge.runtime.sneaky (line 5, inside a function) imports fcn_edge.data.transforms" in problems[0]


def test_relative_and_aliased_imports_are_resolved():
    problems = violations({
        "fcn_edge.stream": _module("", is_package=True),
        "fcn_edge.stream.thing": _module("class A:\n    def go(self):\n        from ..export import graph\n"),
        "fcn_edge.export": _module("", is_package=True),
        "fcn_edge.export.graph": _module(""),
        "fcn_edge.bench.x": _module("import fcn_edge.calib.qdq as q\n"),
        "fcn_edge.calib.qdq": _module(""),
    })
    assert any("fcn_edge.stream.thing (line 3, inside a function) imports fcn_edge.export.graph" in p
               for p in problems), problems
    assert any("fcn_edge.bench.x (line 1, at module level) imports fcn_edge.calib.qdq" in p for p in problems)


def test_heavy_libraries_in_the_artifact_layer_are_reported_at_any_depth():
    problems = violations({
        "fcn_edge.artifacts.reader": _module("import json\nimport numpy as np\n\n"
                                             "def parse(path):\n    import onnx\n    return onnx.load(path)\n"),
        "fcn_edge.artifacts.other": _module("try:\n    from tensorrt import Logger\nexcept ImportError:\n    pass\n"),
        "fcn_edge.artifacts.third": _module("from fcn_edge.runtime.base import Runner\n"),
    })
    assert any("fcn_edge.artifacts.reader (line 5, inside a function) imports onnx" in p and "heavy" in p
               for p in problems), problems
    assert any("fcn_edge.artifacts.other" in p and "tensorrt" in p for p in problems), problems
    assert any("fcn_edge.artifacts.third" in p and "device layer" in p for p in problems), problems
    assert len(problems) == 3


def test_an_allowed_edge_at_module_level_is_still_reported():
    problems = violations({
        "fcn_edge.runtime.torch_backend": _module("from fcn_edge.export.graph import DeployableFCN\n"),
        "fcn_edge.export.graph": _module(""),
    })
    assert len(problems) == 1 and "not at module level" in problems[0]


def test_build_may_use_device_and_unplaced_modules_are_reported():
    assert violations({"fcn_edge.export.x": _module("from fcn_edge.runtime import open_runner\n"),
                       "fcn_edge.runtime": _module("", is_package=True)}) == []
    problems = violations({"fcn_edge.newthing": _module("import os\n")})
    assert len(problems) == 1 and "in no layer" in problems[0]
