"""``fcn-edge eval``: the paper's four metrics for any model, on any backend.

``evaluate(models, dataset, EvalConfig) -> EvalReport`` scores one model, or several on
the same images (``--compare``: each model's metrics plus its pixel agreement with the
first).  Models are opened through :func:`fcn_edge.runtime.open_runner` (``.pt``,
``.onnx``, ``.engine``) and see the same decoded images and the same resize
(:func:`fcn_edge.data.resize_for_network`); predictions are mapped back to the label
size with nearest-neighbour and scored with :class:`fcn_edge.metrics.ConfusionMatrix`.
Importing this package does not import torch.
"""

from fcn_edge.eval.evaluate import EvalConfig, check_classes, evaluate, evaluate_predictors, open_eval_dataset
from fcn_edge.eval.loop import network_size, run_evaluation
from fcn_edge.eval.predict import Predictor, RunnerPredictor, open_predictor, runner_options
from fcn_edge.eval.report import EvalReport, ModelResult

__all__ = [
    "EvalConfig", "EvalReport", "ModelResult", "Predictor", "RunnerPredictor", "check_classes", "evaluate",
    "evaluate_predictors", "network_size", "open_eval_dataset", "open_predictor", "run_evaluation",
    "runner_options",
]
