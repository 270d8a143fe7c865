"""kill -9 in the middle of writing an ONNX, a Q/DQ ONNX, an engine pair or a checkpoint.

A child process (tests/reliability/interrupted_writer.py) runs the real command and is
stopped deterministically inside the atomic block with half of the new file written;
the test SIGKILLs it there.  Then: the final names hold the previous bytes (or do not
exist when there was none), the half file sits only under a ``.fcn-edge-tmp-<pid>-``
name, and the next write into that folder removes it once stale (writer dead and file
untouched for a minute, or anything untouched for an hour: fcn_edge/fileio.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, cli_env
from tests.reliability.conftest import leftovers, orin_gpu

OLD = b"previous artifact: must survive a kill -9\n"


def kill_mid_write(tmp_path: Path, *args, timeout: float = 240.0) -> list[Path]:
    """Start the writer, wait until it is inside the write, SIGKILL it; returns the temporaries it left (its pid in
    their names)."""
    marker = tmp_path / "inside-the-write"
    process = subprocess.Popen([sys.executable, "-m", "tests.reliability.interrupted_writer", str(marker),
                                *map(str, args)], cwd=REPO_ROOT, env=cli_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            if process.poll() is not None:
                raise AssertionError(f"the writer ended before the write ({process.returncode}):\n"
                                     f"{process.stdout.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("the writer never reached the write")
            time.sleep(0.05)
        assert int(marker.read_text()) == process.pid
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    marker.unlink()
    left = leftovers(tmp_path)
    assert all(p.name.startswith(f".fcn-edge-tmp-{process.pid}-") for p in left), left
    return left


def clean_up_after(folder: Path, left: list[Path]) -> None:
    """The next atomic write into ``folder`` removes what the killed writer left, once it is stale."""
    from fcn_edge.fileio import STALE_DEAD_WRITER_S, atomic_write_text

    assert left
    atomic_write_text(folder / "next.txt", "a later write\n")
    assert leftovers(folder) == left, "a fresh temporary (its writer may still be starting up) was removed"
    old = time.time() - STALE_DEAD_WRITER_S - 5
    for path in left:
        os.utime(path, (old, old))
    atomic_write_text(folder / "next.txt", "a later write\n")
    assert not leftovers(folder)


def test_kill_during_export(tiny_checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(OLD)
    left = kill_mid_write(tmp_path, "export", tiny_checkpoint, out)
    assert out.read_bytes() == OLD
    assert len(left) == 1 and left[0].suffix == ".onnx" and left[0].stat().st_size > 0  # the half file, hidden
    clean_up_after(tmp_path, left)


def test_kill_during_calibration(tiny_onnx, tiny_data, tmp_path):
    source = tmp_path / "m.onnx"
    source.write_bytes(tiny_onnx.read_bytes())
    outputs = [tmp_path / "m.int8.onnx", tmp_path / "m.calib.cache", tmp_path / "m.int8.calib.json"]
    for path in outputs:
        path.write_bytes(OLD)
    left = kill_mid_write(tmp_path, "calibrate", source, tiny_data / "train" / "images", outputs[0])
    assert all(path.read_bytes() == OLD for path in outputs)
    assert source.read_bytes() == tiny_onnx.read_bytes()
    clean_up_after(tmp_path, left)
    # its working folder (a copy of the model) in the system temp folder goes the same way
    import tempfile

    from fcn_edge.fileio import STALE_DEAD_WRITER_S, remove_stale_scratch

    pid = left[0].name.split("-")[3]
    scratch = list(Path(tempfile.gettempdir()).glob(f"fcn-edge-calibrate-{pid}-*"))
    assert len(scratch) == 1 and any(scratch[0].iterdir())
    assert scratch[0] not in remove_stale_scratch()  # not yet stale: it changed seconds ago
    old = time.time() - STALE_DEAD_WRITER_S - 5
    os.utime(scratch[0], (old, old))
    assert scratch[0] in remove_stale_scratch() and not scratch[0].exists()


def test_kill_during_checkpoint_save_in_training(tiny_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "best.pt"):
        (run / name).write_bytes(OLD)
    left = kill_mid_write(run, "train", tiny_data, run)
    assert (run / "last.pt").read_bytes() == OLD and (run / "best.pt").read_bytes() == OLD
    assert len(left) == 1 and left[0].suffix == ".pt"
    clean_up_after(run, left)


def test_kill_while_writing_an_engine_pair(tiny_engine_pair, tmp_path):
    """Killed with the new engine's temporary written and the sidecar's half written: the old pair stands."""
    from fcn_edge.artifacts.sidecar import prepare_engine_load, sidecar_path_for

    engine = tmp_path / tiny_engine_pair.name
    engine.write_bytes(tiny_engine_pair.read_bytes())
    sidecar_path_for(engine).write_bytes(sidecar_path_for(tiny_engine_pair).read_bytes())
    before = (engine.read_bytes(), sidecar_path_for(engine).read_bytes())
    left = kill_mid_write(tmp_path, "engine", engine, "mid-pair")
    assert (engine.read_bytes(), sidecar_path_for(engine).read_bytes()) == before
    assert len(left) == 2  # the engine's and the sidecar's temporaries
    prepare_engine_load(engine, "8.6.2", orin_gpu())  # the old pair still loads
    clean_up_after(tmp_path, left)


def test_kill_between_the_engine_and_sidecar_renames_is_detected(tiny_engine_pair, tmp_path):
    """The one crash window of the pair writer: new engine, old sidecar.  Loading says so instead of trusting it."""
    from fcn_edge.artifacts.sidecar import prepare_engine_load, sidecar_path_for
    from fcn_edge.errors import ArtifactError
    engine = tmp_path / tiny_engine_pair.name
    engine.write_bytes(tiny_engine_pair.read_bytes())
    sidecar_path_for(engine).write_bytes(sidecar_path_for(tiny_engine_pair).read_bytes())
    left = kill_mid_write(tmp_path, "engine", engine, "between-renames")
    assert engine.read_bytes().startswith(b"NEW ENGINE BYTES")
    with pytest.raises(ArtifactError, match="mismatched"):
        prepare_engine_load(engine, "8.6.2", orin_gpu())
    clean_up_after(tmp_path, left)


def test_stale_rules(tmp_path):
    """Which leftovers the next write removes: dead writer + a minute old, or anyone's + an hour old; never a live one."""
    from fcn_edge.fileio import STALE_ANY_S, STALE_DEAD_WRITER_S, TMP_PREFIX, stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    now = time.time()
    files = {
        "dead-fresh": (dead_pid, 5), "dead-old": (dead_pid, STALE_DEAD_WRITER_S + 5),
        "live-old": (live_pid, STALE_DEAD_WRITER_S + 5), "live-ancient": (live_pid, STALE_ANY_S + 5),
        "no-pid-old": (None, STALE_DEAD_WRITER_S + 5), "no-pid-ancient": (None, STALE_ANY_S + 5),
    }
    paths = {}
    for name, (pid, age) in files.items():
        path = tmp_path / f"{TMP_PREFIX}{pid if pid else 'verify'}-{name}.onnx"
        path.write_bytes(b"half")
        os.utime(path, (now - age, now - age))
        paths[name] = path
    (tmp_path / f"{TMP_PREFIX}folder").mkdir()  # folders (triton-repo staging) are never touched
    stale = {p.name for p in stale_temporaries(tmp_path, now=now)}
    assert stale == {paths[n].name for n in ("dead-old", "live-ancient", "no-pid-ancient")}
