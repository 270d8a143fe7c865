"""GOMP_SPINCOUNT before torch starts its OpenMP pool (fcn_edge/threads.py: the shared-CPU collapse)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import cli_env

SHOW = "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
PROBE = "import os, sys; {first}; " + SHOW

CLI = ("import os\ntry:\n    from fcn_edge.cli import main; main({argv!r})\nexcept SystemExit:\n    pass\n" + SHOW)


@pytest.mark.parametrize("code, preset, expected", [
    (PROBE.format(first="from fcn_edge.train import train"), {}, "10000 None"),       # API, before torch
    (PROBE.format(first="from fcn_edge.train import train"), {"GOMP_SPINCOUNT": "500"}, "500 None"),  # user's wins
    (PROBE.format(first="from fcn_edge.train import train"), {"OMP_WAIT_POLICY": "PASSIVE"}, "None PASSIVE"),
    (PROBE.format(first="import torch; from fcn_edge.train import train"), {}, "None None"),  # too late: left alone
    (PROBE.format(first="import fcn_edge.train"), {}, "None None"),   # the config side alone imports no torch
    (CLI.format(argv=["train", "--data", "/nonexistent"]), {}, "10000 None"),   # set before the command runs
    (CLI.format(argv=["info", "/nonexistent.onnx"]), {}, "None None"),          # inference commands: untouched
])
def test_openmp_threads_spin_briefly_for_training_unless_told_otherwise(code, preset, expected):
    env = {k: v for k, v in cli_env().items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(preset)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected
