"""OMP_WAIT_POLICY=PASSIVE before torch starts its OpenMP pool (fcn_edge/threads.py: the shared-CPU collapse)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import cli_env

PROBE = "import os, sys; {first}; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize("first, preset, expected", [
    ("import fcn_edge.train", None, "PASSIVE"),                 # the library, imported before torch
    ("import fcn_edge.train", "ACTIVE", "ACTIVE"),              # the user's choice wins
    ("import torch; import fcn_edge.train", None, "None"),      # too late to matter: left alone
    ("from fcn_edge.cli import main; main(['--version'])", None, "PASSIVE"),
])
def test_openmp_threads_sleep_unless_told_otherwise(first, preset, expected):
    env = {k: v for k, v in cli_env().items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = PROBE.format(first=first)
    if "main(" in first:  # --version exits through SystemExit; print in a finally
        code = ("import os\ntry:\n    from fcn_edge.cli import main; main(['--version'])\nexcept SystemExit:\n    pass\n"
                "print(os.environ.get('OMP_WAIT_POLICY'))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected
