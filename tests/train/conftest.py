"""Small synthetic datasets and a quick-run config for the training tests."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_CLASSES, TINY_WIDTH


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """32 train + 8 val synthetic scenes of 128x128, 5 classes (folder layout with dataset.json).

    128 pixels, not less: FCN's coarsest map is 1/32 of the input, and at 64x64 a tiny
    net trained from scratch stays on "everything is background" for hundreds of steps.
    """
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic_dataset(root, SynthConfig(train=32, val=8, size=(128, 128), num_classes=TINY_CLASSES, seed=3))
    return root


def quick_config(data, out, **changes):
    """A few CPU iterations of a 1/16-width FCN-8s on 64x64 crops, no worker processes, one thread.

    One torch thread: on a shared 2-core machine two OpenMP threads spin-wait for each
    other and a 15 s run takes minutes; the trainer restores the thread count afterwards.
    """
    from fcn_edge.train import TrainConfig

    values = dict(data=str(data) if data else None, out=str(out) if out else None, width=TINY_WIDTH, crop=(64, 64), scale_range=(0.75, 1.25),
                  batch_size=4, iterations=8, warmup_iterations=2, val_interval=4, val_limit=8, workers=0,
                  device="cpu", progress=False, tensorboard=False, log_interval=2, threads=1)
    values.update(changes)
    return TrainConfig(**values)
