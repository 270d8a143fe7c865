"""Ready-made settings: the tiny FCN-8s the demo and the synthetic benchmark train on the CPU.

On the synthetic dataset (``fcn-edge synth`` defaults: 400 + 100 images of 128x128,
5 classes) a width-1/8 FCN-8s with the modern recipe reaches a validation mean IU of
0.85 or more in a few minutes on two CPU cores (benchmarks/train_synthetic.py records
the figure and the time).
"""

from __future__ import annotations

from typing import Any

from fcn_edge.train.config import TrainConfig

SYNTHETIC_DEMO: dict[str, Any] = dict(
    arch="fcn8s",
    recipe="modern",
    width=1 / 8,
    iterations=500,
    batch_size=8,
    lr=1e-3,
    crop=(128, 128),
    scale_range=(1.0, 1.0),
    warmup_iterations=50,
    val_interval=100,
    geometry="aligned",
)


def synthetic_demo_config(data: str, out: str, **overrides: Any) -> TrainConfig:
    """The demo's training run on a synthetic dataset at ``data``, written to ``out``."""
    return TrainConfig(data=str(data), out=str(out), **{**SYNTHETIC_DEMO, **overrides})
