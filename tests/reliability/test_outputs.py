"""Outputs that cannot be written: a missing folder, a read-only folder, a full disk.

Every command that writes gets the same expectations: one ``error:`` line naming the
path or its folder, a non-zero exit, the folder's previous contents untouched and no
temporary file left behind.  The full disk is real where the test may mount a tiny
tmpfs (root in a container that allows it) and simulated in-process otherwise.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error
from tests.reliability.conftest import leftovers, snapshot

# command -> argv with OUT the folder to write into (inputs are good; only the destination is bad)
WRITERS = {
    "synth": lambda c, out: ["synth", "--out", out / "data", "--train", "1", "--val", "1", "--size", "32x32"],
    "train": lambda c, out: ["train", "--data", c.data, "--out", out / "run", "--iterations", "1", "--width", "1/16",
                             "--crop", "64x64", "--batch-size", "2", "--workers", "0", "--device", "cpu"],
    "eval": lambda c, out: ["eval", c.ckpt, "--data", c.data, "--json", out / "eval.json"],
    "export": lambda c, out: ["export", c.ckpt, "-o", out / "model.onnx", "--no-verify"],
    "export --lint-only --json": lambda c, out: ["export", "--lint-only", c.onnx, "--json", out / "lint.json"],
    "calibrate": lambda c, out: ["calibrate", c.onnx, "--images", c.data, "-o", out / "m.int8.onnx", "--num", "2"],
    "build-engine": lambda c, out: ["build-engine", c.onnx, "-o", out / "m.engine"],
    "run --sink video": lambda c, out: ["run", c.onnx, "--source", c.image, "--sink", out / "out.mp4"],
    "run --sink folder": lambda c, out: ["run", c.onnx, "--source", c.image, "--sink", f"{out}/frames/"],
    "run --sink labels": lambda c, out: ["run", c.onnx, "--source", c.image, "--sink", f"labels:{out}/labels"],
    "run --stats-json": lambda c, out: ["run", c.onnx, "--source", c.image, "--stats-json", out / "stats.json"],
    "bench --json": lambda c, out: ["bench", c.onnx, "-n", "1", "--warmup", "0", "--json", out / "bench.json"],
    "triton-repo": lambda c, out: ["triton-repo", c.onnx, "-o", out / "repo"],
    "demo": lambda c, out: ["demo", "--workdir", out / "demo", "--iterations", "1", "--no-engines"],
}


@pytest.fixture
def inputs(tiny_checkpoint, tiny_onnx, tiny_data, sample_image):
    from types import SimpleNamespace

    return SimpleNamespace(ckpt=tiny_checkpoint, onnx=tiny_onnx, data=tiny_data, image=sample_image)


# Commands whose output is a whole folder (a dataset, a training run, the demo's workdir) create
# it with its parents, like mkdir -p; every command writing a *file* refuses a missing folder
# ("create it first") rather than guess at a typo'd path.
FOLDER_MAKERS = ("synth", "train", "demo")


@pytest.mark.parametrize("command", [c for c in WRITERS if c not in FOLDER_MAKERS])
def test_output_in_a_missing_folder(run_cli, inputs, tmp_path, command):
    missing = tmp_path / "no" / "such" / "folder"
    completed = run_cli(*WRITERS[command](inputs, missing), cwd=tmp_path)
    assert_one_line_error(completed, str(tmp_path / "no"))
    assert not (tmp_path / "no").exists(), "a command created folders it was not asked to"
    assert not leftovers(tmp_path)


def test_folder_outputs_are_created_with_their_parents(run_cli, inputs, tmp_path):
    completed = run_cli(*WRITERS["synth"](inputs, tmp_path / "new" / "folder"), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "new" / "folder" / "data" / "dataset.json").is_file()


@pytest.mark.parametrize("command", list(WRITERS))
def test_output_in_a_read_only_folder(run_cli, inputs, readonly_dir, tmp_path, command):
    before = snapshot(readonly_dir)
    completed = run_cli(*WRITERS[command](inputs, readonly_dir), cwd=tmp_path)
    assert_one_line_error(completed, str(readonly_dir))
    assert snapshot(readonly_dir) == before


# ---------------------------------------------------------------------------- full disk
def test_full_disk_while_exporting_keeps_the_previous_onnx(run_cli, tiny_checkpoint, tiny_onnx, tiny_disk):
    """A real ENOSPC: the tiny model's ONNX (2 MB) cannot fit a 256 KB tmpfs holding the previous (small) file."""
    target = tiny_disk / "model.onnx"
    target.write_bytes(b"previous small onnx")
    completed = run_cli("export", tiny_checkpoint, "-o", target, "--no-verify", cwd=tiny_disk.parent)
    assert_one_line_error(completed, "no space left", str(target))
    assert target.read_bytes() == b"previous small onnx"
    assert not leftovers(tiny_disk)


def test_full_disk_while_saving_a_checkpoint_torch_raises_no_oserror(tiny_disk, tiny_info):
    """torch.save reports a full disk as RuntimeError('file write failed'), not OSError: still the one sentence."""
    import torch

    from fcn_edge.checkpoint import save_model
    from fcn_edge.errors import FcnEdgeError
    from fcn_edge.models import build_model

    target = tiny_disk / "last.pt"
    target.write_bytes(b"previous checkpoint")
    model = build_model("fcn8s", tiny_info.num_classes, "aligned", tiny_info.width)
    with torch.no_grad():
        model.fc6.weight.normal_()  # incompressible: the zip cannot shrink it into 256 KB
    with pytest.raises(FcnEdgeError, match="no space left") as info:
        save_model(target, model, tiny_info)
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"previous checkpoint"
    assert not leftovers(tiny_disk)


@pytest.mark.parametrize("writer", ["atomic_write_bytes", "engine_pair", "calibration_cache", "list_file"])
def test_simulated_enospc_in_each_writer(tmp_path, monkeypatch, writer):
    """Every writer (through fileio) turns ENOSPC into the one sentence and keeps the previous file."""
    from fcn_edge import fileio
    from fcn_edge.errors import FcnEdgeError

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / {"atomic_write_bytes": "a.bin", "engine_pair": "m.engine", "calibration_cache": "m.calib.cache",
                         "list_file": "calib.txt"}[writer]
    target.write_bytes(b"previous")
    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(FcnEdgeError, match="no space left"):
        if writer == "atomic_write_bytes":
            fileio.atomic_write_bytes(target, b"new" * 1000)
        elif writer == "engine_pair":
            from tests.engine.test_sidecar import ENGINE, sidecar_dict

            from fcn_edge.artifacts.sidecar import write_engine_and_sidecar
            write_engine_and_sidecar(target, ENGINE, sidecar_dict())
        elif writer == "calibration_cache":
            from fcn_edge.calib.trt_cache import write_cache
            write_cache(target, {"conv1": 1.0}, trt_version="8.5.2", method="entropy")
        else:
            from fcn_edge.data.listfile import write_list_file
            write_list_file(target, ["a.png"])
    monkeypatch.setattr(fileio.os, "fsync", real_fsync)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
