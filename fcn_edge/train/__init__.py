"""``fcn-edge train``: FCN-32s/16s/8s training with the paper's recipe or a modern one.

``train(TrainConfig) -> TrainResult`` runs (or resumes) a run; under ``torchrun`` each
process calls it and DistributedDataParallel does the rest.  ``TrainConfig`` fields
left at ``None`` take the recipe's value (:func:`recipe`); the resolved config is
stored in every checkpoint.  Outputs in ``out``: ``best.pt`` (best validation mean IU),
``last.pt`` (latest weights plus resume state), ``log.csv``, ``config.json``.
``synthetic_demo_config`` is the setting the demo and the synthetic benchmark use.
"""

from fcn_edge.train.config import (PAPER_LR, ConfigError, Recipe, ResolvedConfig, TrainConfig, modern_recipe,
                                   paper_recipe, recipe, resolve_config)
from fcn_edge.train.presets import SYNTHETIC_DEMO, synthetic_demo_config
from fcn_edge.train.trainer import TrainingDiverged, TrainResult, train

__all__ = [
    "PAPER_LR", "ConfigError", "Recipe", "ResolvedConfig", "SYNTHETIC_DEMO", "TrainConfig", "TrainResult",
    "TrainingDiverged", "modern_recipe", "paper_recipe", "recipe", "resolve_config", "synthetic_demo_config",
    "train",
]
