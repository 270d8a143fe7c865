"""SIGINT/SIGTERM to a command's whole process group (Ctrl-C in a terminal, ``timeout``,
systemd's KillMode=control-group): the command abandons its work as on Ctrl-C, exits 130
and leaves neither its output nor a half-written temporary behind.

Training (tests/train/test_interrupt.py), run (tests/stream/test_command.py) and serve
(tests/serve) have their own group tests; these are the commands that only abandon.
Each test waits for the command's first plain progress line (stderr is a pipe), so the
signal lands in the middle of the work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import TINY_CLASSES, cli_env


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    """300 small val images: enough work that a signal lands before the end."""
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("group-signals") / "data"
    write_synthetic_dataset(root, SynthConfig(train=2, val=300, size=(64, 64), num_classes=TINY_CLASSES, seed=11))
    return root


def interrupt_group_at(args, marker: str, signum: int, cwd) -> tuple[int, str]:
    """Start ``fcn-edge ARGS`` in its own process group; signal the group at the first stderr line with ``marker``."""
    env = {**cli_env(), "FCN_EDGE_PROGRESS": "", "FCN_EDGE_PROGRESS_INTERVAL": "0"}
    process = subprocess.Popen([sys.executable, "-m", "fcn_edge", *map(str, args)], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if marker in line:
                os.killpg(process.pid, signum)
                break
        seen.append(process.stderr.read())
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return code, "".join(seen)


def assert_abandoned(code: int, stderr: str, signum: int, output) -> None:
    assert code == 130, stderr
    assert "interrupted" in stderr.splitlines()[-1], stderr
    assert ("(SIGTERM)" in stderr) == (signum == signal.SIGTERM)
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert not output.exists()
    assert not [p.name for p in output.parent.iterdir() if p.name.startswith(".fcn-edge-tmp")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_eval(tiny_onnx, many_images, tmp_path, signum):
    out = tmp_path / "eval.json"
    code, stderr = interrupt_group_at(["eval", tiny_onnx, "--data", many_images, "--json", out], "eval ", signum,
                                      tmp_path)
    assert_abandoned(code, stderr, signum, out)


def test_calibrate(tiny_onnx, many_images, tmp_path):
    out = tmp_path / "m.int8.onnx"
    code, stderr = interrupt_group_at(["calibrate", tiny_onnx, "--images", many_images, "--num", "300",
                                       "--no-accuracy", "--no-sensitivity", "-o", out], "calibrating", signal.SIGTERM,
                                      tmp_path)
    assert_abandoned(code, stderr, signal.SIGTERM, out)
    assert not list(tmp_path.iterdir())


def test_export(tiny_checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    code, stderr = interrupt_group_at(["export", tiny_checkpoint, "-o", out], "export m.onnx", signal.SIGTERM,
                                      tmp_path)
    assert_abandoned(code, stderr, signal.SIGTERM, out)
