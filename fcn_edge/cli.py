"""The ``fcn-edge`` command line: one sub-command per pipeline stage.

Each sub-command lives in its stage's package (``fcn_edge/<stage>/command.py``) and
exposes ``register(subparsers)``.  Those modules import nothing heavy at the top, so
``fcn-edge --help`` and ``fcn-edge run`` on a Jetson never import torch.

Errors a user can fix are :class:`fcn_edge.errors.FcnEdgeError`: printed as one line,
non-zero exit, no traceback.  Anything else is reported as an internal error in one
line too; ``--debug`` (or ``FCN_EDGE_DEBUG=1``) shows the traceback.

SIGTERM is treated like Ctrl-C (:func:`terminate_as_interrupt`): ``timeout``, systemd and
supervisors signal the whole process group, and every command abandons its work the way
it does on Ctrl-C (atomic outputs leave no half file) and exits 130.  Commands with
more to do on a stop (train saves a checkpoint, run finishes its video, serve stops
Triton) install their own handlers for both signals.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from typing import Sequence

from fcn_edge import __version__
from fcn_edge.errors import FcnEdgeError

# command name -> module defining register(subparsers); in pipeline order for --help.
COMMANDS: dict[str, str] = {
    "synth": "fcn_edge.data.command",
    "train": "fcn_edge.train.command",
    "eval": "fcn_edge.eval.command",
    "export": "fcn_edge.export.command",
    "calibrate": "fcn_edge.calib.command",
    "build-engine": "fcn_edge.engine.command",
    "run": "fcn_edge.stream.command",
    "bench": "fcn_edge.bench.command",
    "demo": "fcn_edge.demo.command",
    "serve": "fcn_edge.serve.command",
    "triton-repo": "fcn_edge.serve.repo_command",
    "ros2": "fcn_edge.ros2.command",
    "doctor": "fcn_edge.doctor",
    "info": "fcn_edge.info",
}

# The build half's commands (PyTorch, dataset readers): tested on Python 3.10+ only, which
# current PyTorch needs.  On JetPack 5's Python 3.8 they refuse in one line; the device
# half (run, info, doctor, bench, build-engine, serve's clients) runs there.
BUILD_COMMANDS = frozenset({"synth", "train", "eval", "export", "calibrate", "demo"})
BUILD_PYTHON = (3, 10)


def python_too_old(command: str, version=sys.version_info) -> str | None:
    """One sentence when ``command`` belongs to the build half and this Python is older than it needs."""
    if command not in BUILD_COMMANDS or tuple(version[:2]) >= BUILD_PYTHON:
        return None
    return (f"needs Python {BUILD_PYTHON[0]}.{BUILD_PYTHON[1]} or newer (this is {version[0]}.{version[1]}.{version[2]}): "
            "train, export and calibrate on a workstation; run, info, bench and build-engine work here")

log = logging.getLogger("fcn_edge")

# Commands that train on the CPU: their OpenMP threads sleep while they wait (fcn_edge/threads.py).
TRAINING_COMMANDS = ("train", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fcn-edge",
        description="FCN semantic segmentation from PyTorch to TensorRT engines and live camera streams.",
    )
    parser.add_argument("--version", action="version", version=f"fcn-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # stage not present in this install

            raise
        module.register(subparsers)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if verbose < 2 else "%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger("fcn_edge")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so every command stops the same way."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


def terminate_as_interrupt() -> object | None:
    """SIGTERM -> :class:`Terminated` in the main thread, unless someone handles it already.

    Returns the handler it replaced (to restore), None when it changed nothing.
    """
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_terminated)
            return previous
    except ValueError:  # not the main thread (main() called from a worker thread)
        pass
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in TRAINING_COMMANDS:
        from fcn_edge.threads import limit_openmp_spinning

        limit_openmp_spinning()  # before the command imports torch: see fcn_edge/threads.py
    debug = args.debug or os.environ.get("FCN_EDGE_DEBUG") == "1"
    configure_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    prog = f"fcn-edge {args.command}"
    too_old = python_too_old(args.command)
    if too_old:
        print(f"{prog}: error: {too_old}", file=sys.stderr)
        return 2
    replaced = terminate_as_interrupt()
    try:
        result = args.func(args)
        return int(result or 0)
    except FcnEdgeError as exc:
        if debug:
            log.exception("%s failed", prog)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        how = " (SIGTERM)" if isinstance(exc, Terminated) else ""
        print(f"{prog}: interrupted{how}", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{prog}: error: out of memory; try a smaller batch, size or model", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if debug:
            raise
        text = str(exc).strip().splitlines()
        detail = text[0][:300] if text else ""
        print(f"{prog}: internal error: {type(exc).__name__}: {detail} "
              "(please report it; rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if replaced is not None:  # main() called in-process (tests, embedding): leave SIGTERM as it was
            signal.signal(signal.SIGTERM, replaced)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
