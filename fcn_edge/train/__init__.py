"""``fcn-edge train``: FCN-32s/16s/8s training with the paper's recipe or a modern one.

``train(TrainConfig) -> TrainResult`` runs (or resumes) a run; under ``torchrun`` each
process calls it and DistributedDataParallel does the rest.  ``TrainConfig`` fields
left at ``None`` take the recipe's value (:func:`recipe`); the resolved config is
stored in every checkpoint.  Outputs in ``out``: ``best.pt`` (best validation mean IU),
``last.pt`` (latest weights plus resume state), ``log.csv``, ``config.json``.
``synthetic_demo_config`` is the setting the demo and the synthetic benchmark use.
See README.md beside this file.

The configuration needs only the standard library; torch is imported when
``train`` (or another torch-side name) is first used, so ``fcn-edge --help`` and the
on-device commands never pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

from fcn_edge.train.config import (  # noqa: F401 - re-exported
    PAPER_LR, ConfigError, Recipe, ResolvedConfig, TrainConfig, modern_recipe, paper_recipe, recipe,
    resolve_config,
)
from fcn_edge.train.presets import SYNTHETIC_DEMO, synthetic_demo_config  # noqa: F401 - re-exported

_LAZY = {
    "train": "fcn_edge.train.trainer",
    "TrainResult": "fcn_edge.train.trainer",
    "TrainingDiverged": "fcn_edge.train.trainer",
}

__all__ = sorted([
    "PAPER_LR", "ConfigError", "Recipe", "ResolvedConfig", "SYNTHETIC_DEMO", "TrainConfig", "modern_recipe",
    "paper_recipe", "recipe", "resolve_config", "synthetic_demo_config", *_LAZY,
])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fcn_edge.train' has no attribute {name!r}")
    from fcn_edge.threads import limit_openmp_spinning

    limit_openmp_spinning()  # before the trainer imports torch: see fcn_edge/threads.py
    return getattr(importlib.import_module(module), name)
