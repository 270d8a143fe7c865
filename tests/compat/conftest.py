"""Session fixtures for tests/compat: a wheel of this checkout and the environments built from it.

Each environment is built once per test run, under pytest's basetemp; pip's cache keeps a
repeat run fast.  ``FCN_EDGE_SKIP_VENVS=1`` skips every test here (for an offline machine:
these environments come from the package index).
"""

from __future__ import annotations

import shutil
import sys

import pytest

from tests.compat import venvs
from tests.onnx_models import PREBUILT_NAMES


@pytest.fixture(scope="session")
def venvs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture(scope="session")
def fcn_edge_wheel(venvs_root):
    """``pip wheel --no-deps .`` of this checkout (built from a copy, so the checkout stays clean)."""
    return venvs.build_wheel(venvs_root / "wheel")


@pytest.fixture(scope="session")
def prebuilt_models(venvs_root, tiny_onnx, tiny_onnx_dynamic, tiny_onnx_raw):
    """The session's tiny ONNX exports in one folder, for test runs in environments without torch."""
    folder = venvs_root / "models"
    folder.mkdir()
    for fixture, path in (("tiny_onnx", tiny_onnx), ("tiny_onnx_dynamic", tiny_onnx_dynamic),
                          ("tiny_onnx_raw", tiny_onnx_raw)):
        shutil.copy2(path, folder / PREBUILT_NAMES[fixture])
    return folder


@pytest.fixture(scope="session")
def outside_repo(venvs_root):
    """A working folder outside the checkout: commands there see only the installed package."""
    folder = venvs_root / "work"
    folder.mkdir()
    assert venvs.REPO_ROOT not in folder.parents
    return folder


@pytest.fixture(scope="session")
def base_python():
    """The interpreter behind the test run's environment (a venv made from a venv would chain them)."""
    return getattr(sys, "_base_executable", None) or sys.executable
