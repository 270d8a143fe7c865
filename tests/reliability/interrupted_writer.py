"""Child process of test_interrupted_writes: starts a real write and stops *inside* it, to be killed there.

    python -m tests.reliability.interrupted_writer MARKER WRITER ARGS...

The writer runs through fcn-edge's real code (the CLI's ``main`` for export, calibrate
and train; the engine stage's pair writer for engines, TensorRT not being here).  The
one thing replaced -- a test double, in this child only -- is the library call that
fills the temporary file: it writes the first half of the real bytes, then writes
MARKER (holding this process id) and sleeps until the test SIGKILLs it.  The kill
therefore always lands mid-write, inside the atomic block, never by luck of timing.

WRITER: ``export CKPT OUT`` | ``calibrate ONNX IMAGES OUT`` | ``train DATA OUT`` |
``engine OUT mid-pair|between-renames``
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path


def _pause(marker: str) -> None:
    Path(marker).write_text(str(os.getpid()))
    while True:  # killed here
        time.sleep(60)


def _is_temporary(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)).name.startswith(".fcn-edge-tmp-")


def _write_half(path, data: bytes, marker: str) -> None:
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    _pause(marker)


def _patch_onnx_save(marker: str) -> None:
    import onnx

    real = onnx.save

    def save(model, f, *args, **kwargs):
        if _is_temporary(f):
            _write_half(f, model.SerializeToString(), marker)
        return real(model, f, *args, **kwargs)

    onnx.save = onnx.save_model = save


def _patch_torch_save(marker: str) -> None:
    import torch

    real = torch.save

    def save(obj, f, *args, **kwargs):
        if _is_temporary(f):
            buffer = io.BytesIO()
            real(obj, buffer, *args, **kwargs)
            _write_half(f, buffer.getvalue(), marker)
        return real(obj, f, *args, **kwargs)

    torch.save = save


def _engine(out: str, where: str, marker: str) -> int:
    from fcn_edge import fileio
    from fcn_edge.artifacts.sidecar import read_sidecar, write_engine_and_sidecar

    sidecar = dict(read_sidecar(out).data)  # the previous pair's sidecar, re-stamped for the new bytes
    new_engine = b"NEW ENGINE BYTES " * 500
    if where == "mid-pair":  # the engine's temporary is written, the sidecar's is being written
        real_write_text = Path.write_text

        def write_text(self, *args, **kwargs):
            if _is_temporary(self):
                return _write_half(self, str(args[0]).encode(), marker)
            return real_write_text(self, *args, **kwargs)

        Path.write_text = write_text  # type: ignore[method-assign]
    else:  # the engine is renamed into place, the sidecar not yet: the documented crash window
        real_replace, calls = fileio.os.replace, []

        def replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:
                _pause(marker)
            return real_replace(src, dst)

        fileio.os.replace = replace
    write_engine_and_sidecar(out, new_engine, sidecar)
    return 0


def main(argv: list[str]) -> int:
    marker, writer, *args = argv
    from fcn_edge.cli import main as cli

    if writer == "export":
        _patch_onnx_save(marker)
        return cli(["export", args[0], "-o", args[1], "--no-verify", "--target", "trt10"])
    if writer == "calibrate":
        _patch_onnx_save(marker)
        return cli(["calibrate", args[0], "--images", args[1], "-o", args[2], "--num", "2", "--no-accuracy"])
    if writer == "train":
        _patch_torch_save(marker)
        return cli(["train", "--data", args[0], "--out", args[1], "--overwrite", "--iterations", "1", "--width", "1/16",
                    "--crop", "48x48", "--batch-size", "2", "--workers", "0", "--device", "cpu"])
    if writer == "engine":
        return _engine(args[0], args[1], marker)
    raise SystemExit(f"unknown writer {writer}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
