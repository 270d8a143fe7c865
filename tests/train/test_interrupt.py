"""Ctrl-C saves a resumable checkpoint; a NaN loss stops with one clear sentence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from fcn_edge.checkpoint import load_checkpoint
from fcn_edge.train import TrainingDiverged, train
from fcn_edge.train.logs import read_log

from tests.conftest import cli_env

from .conftest import quick_config


def test_ctrl_c_saves_a_resumable_checkpoint_and_resume_continues(synth_small, tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "fcn_edge", "train", "--data", str(synth_small), "--out", str(out), "--width", "1/16",
         "--crop", "64x64", "--batch-size", "2", "--iterations", "5000", "--log-interval", "1", "--workers", "1",
         "--device", "cpu", "--val-split", "none", "--no-tensorboard"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "log.csv").is_file() and len(read_log(out / "log.csv")) >= 3:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "resume with: fcn-edge train --resume" in stderr
    ckpt = load_checkpoint(out / "last.pt")
    done = ckpt.resume["iteration"]
    assert 3 <= done < 5000 and ckpt.training["iteration"] == done

    result = train(quick_config(None, None, resume=str(out / "last.pt"), stop_at=done + 2))
    assert result.interrupted and result.iterations == done + 2
    assert [it for it, _ in result.losses] == [done + 1, done + 2]


def test_nan_loss_stops_with_one_sentence(synth_small, tmp_path):
    config = quick_config(synth_small, tmp_path / "nan", optimizer="sgd", momentum=0.0, loss="sum", lr=1e8,
                          warmup_iterations=0, iterations=30, val_interval=100)
    with pytest.raises(TrainingDiverged) as caught:
        train(config)
    message = str(caught.value)
    assert "\n" not in message
    assert "at iteration" in message and "lower the learning rate (--lr)" in message


def test_sigterm_to_the_process_group_saves_a_checkpoint_and_workers_do_not_crash(synth_small, tmp_path):
    """``timeout``/systemd/supervisors signal the whole group: the DataLoader workers too.

    The workers ignore the signal and the main process stops as on Ctrl-C (it used to end
    in "DataLoader worker (pid N) is killed by signal: Terminated").
    """
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "fcn_edge", "train", "--data", str(synth_small), "--out", str(out), "--width", "1/16",
         "--crop", "64x64", "--batch-size", "2", "--iterations", "5000", "--log-interval", "1", "--workers", "2",
         "--device", "cpu", "--val-split", "none", "--no-tensorboard", "--threads", "1"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "log.csv").is_file() and len(read_log(out / "log.csv")) >= 2:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert "killed by signal" not in stderr and "internal error" not in stderr and "Traceback" not in stderr
    assert "SIGTERM received" in stderr and "resume with: fcn-edge train --resume" in stderr
    ckpt = load_checkpoint(out / "last.pt")
    assert 2 <= ckpt.resume["iteration"] < 5000
    assert not [p.name for p in out.iterdir() if p.name.startswith(".fcn-edge-tmp")]
