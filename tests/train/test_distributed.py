"""DistributedDataParallel through torchrun: 2 CPU processes (gloo) against 1 process.

With the effective batch matched (2 processes x 2 images vs 1 process x 4) both runs
see the same images at every step (DistributedSampler's seeding, per-sample
augmentation), so their loss curves must have the same shape and stay close; only
dropout draws differ between them.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fcn_edge.checkpoint import load_checkpoint
from fcn_edge.train import train
from fcn_edge.train.logs import read_log

from tests.conftest import cli_env

from .conftest import quick_config

ITERATIONS = 20


def _train_losses(out):
    return [float(r["loss"]) for r in read_log(out / "log.csv") if r["phase"] == "train"]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(synth_small, tmp_path):
    out2 = tmp_path / "ddp"
    common = ["--data", synth_small, "--width", "1/16", "--crop", "64x64", "--scale-range", "0.75,1.25",
              "--iterations", ITERATIONS, "--warmup", 2, "--lr", "2e-3", "--val-interval", 5, "--val-limit", 8,
              "--workers", 0, "--log-interval", 1, "--device", "cpu", "--no-tensorboard", "--threads", 1]
    env = {**cli_env(), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "fcn_edge", "train", "--out", out2, "--batch-size", "2", *map(str, common)],
        env=env, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    one = train(quick_config(synth_small, tmp_path / "single", iterations=ITERATIONS, batch_size=4, lr=2e-3,
                             warmup_iterations=2, val_interval=5, log_interval=1))
    losses_two = _train_losses(out2)
    losses_one = _train_losses(tmp_path / "single")
    assert len(losses_two) == len(losses_one) == ITERATIONS  # rank 0 alone wrote the log: no duplicated rows
    # same start (zero score layers: log(5) whatever the dropout), both decrease, same shape, close throughout
    assert losses_two[0] == pytest.approx(losses_one[0], rel=1e-4)
    for losses in (losses_one, losses_two):
        assert np.mean(losses[ITERATIONS // 2:]) < 0.9 * losses[0], (losses_one, losses_two)
    # the per-step ups and downs (which images are in the batch) line up: same data order
    assert np.corrcoef(losses_one, losses_two)[0, 1] > 0.9, (losses_one, losses_two)
    for a, b in zip(losses_one, losses_two):
        assert abs(a - b) <= 0.15 * max(a, b), (losses_one, losses_two)

    ckpt = load_checkpoint(out2 / "last.pt")
    assert ckpt.training["world_size"] == 2 and len(ckpt.resume["rng"]) == 2
    assert ckpt.training["iteration"] == ITERATIONS
    assert one.world_size == 1
    # the confusion matrix was summed over both processes: all 8 validation images counted
    assert ckpt.training["metrics"]["pixels"] == 8 * 128 * 128 - _void_pixels(synth_small, 8)


def _void_pixels(root, count):
    from fcn_edge.data import open_dataset

    dataset = open_dataset(root, "val")
    return sum(int((dataset[i].mask == 255).sum()) for i in range(count))
