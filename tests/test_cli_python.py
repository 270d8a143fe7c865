"""The CLI starts on every Python the package installs on (3.8+); the build half's commands say when they cannot run.

tests/compat runs this file under Python 3.8 and 3.10 too: there every parser is built
without ``argparse.BooleanOptionalAction`` (3.9+), and on 3.8 ``train`` refuses in one line.
"""

from __future__ import annotations

import sys

import pytest

from fcn_edge import cli
from fcn_edge.cli import BUILD_COMMANDS, COMMANDS, python_too_old

from .conftest import assert_one_line_error


def test_only_build_commands_need_python_310():
    message = python_too_old("train", (3, 8, 18))
    assert "Python 3.10 or newer" in message and "3.8.18" in message
    for command in ("run", "info", "doctor", "bench", "build-engine", "serve", "triton-repo"):
        assert python_too_old(command, (3, 8, 18)) is None, command
    assert all(python_too_old(c, (3, 10, 0)) is None for c in BUILD_COMMANDS)
    assert BUILD_COMMANDS <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_on_this_python(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0 and "usage: fcn-edge " + command in capsys.readouterr().out


def test_switches_set_true_false_or_leave_unset():
    parser = cli.build_parser()
    args = parser.parse_args(["build-engine", "m.onnx", "--no-gpu-fallback", "--version-compatible"])
    assert (args.gpu_fallback, args.version_compatible, args.exclude_lean_runtime) == (False, True, None)
    train = vars(parser.parse_args(["train", "--no-flip", "--amp"]))
    assert train["flip"] is False and train["amp"] is True and "tensorboard" not in train  # train's defaults are SUPPRESS


def test_a_build_command_on_this_python(run_cli, tmp_path):
    """On 3.8/3.9: one line naming the Python needed; on 3.10+: the command runs (here: export's own error)."""
    completed = run_cli("export", tmp_path / "missing.pt", cwd=tmp_path)
    if sys.version_info < (3, 10):
        assert_one_line_error(completed, "needs Python 3.10 or newer", "run, info, bench and build-engine work here")
        assert completed.returncode == 2
    else:
        assert_one_line_error(completed, "missing.pt")
