"""fcn-edge export: ONNX with the pre- and post-processing inside the graph, checked against PyTorch.

Public API (imports nothing heavy until used).  The metadata readers are the artifact
layer's (:mod:`fcn_edge.artifacts`, which the device side imports directly), re-exported
here for build-side callers::

    from fcn_edge.export import export_onnx, ExportConfig
    report = export_onnx("model.pt", "export/model.onnx", ExportConfig(size=(512, 512)))

    from fcn_edge.export import read_onnx_metadata
    info, facts = read_onnx_metadata("export/model.onnx")     # ModelInfo, ExportFacts
    info, facts = parse_metadata_props(props, "model.onnx")    # same parser; (None, None) if undescribed

    from fcn_edge.export import lint_onnx
    for report in lint_onnx("any.onnx", targets=("trt8", "trt10")): print(report.summary())
"""

from __future__ import annotations

import importlib
from typing import Any

from fcn_edge.export.config import (  # noqa: F401 - re-exported
    DYNAMIC_AXES, ExportConfig, ExportConfigError, ShapeRange, parse_dynamic, parse_outputs, parse_shape3,
    parse_size_option,
)
from fcn_edge.artifacts.onnx_metadata import (  # noqa: F401 - re-exported (the artifact layer's readers)
    EXPORT_KEY, MODEL_KEY, ExportFacts, check_external_data, metadata_entries, parse_metadata_props,
    read_onnx_header, read_onnx_metadata,
)
from fcn_edge.export.metadata import apply_metadata  # noqa: F401 - re-exported

_LAZY = {
    "export_onnx": "fcn_edge.export.exporter",
    "ExportReport": "fcn_edge.export.exporter",
    "ExportError": "fcn_edge.export.exporter",
    "default_output_path": "fcn_edge.export.exporter",
    "lint_onnx": "fcn_edge.export.lint",
    "LintReport": "fcn_edge.export.lint",
    "LintIssue": "fcn_edge.export.lint",
    "TARGETS": "fcn_edge.export.trt_ops",
    "verify_graph": "fcn_edge.export.verify",
    "VerificationReport": "fcn_edge.export.verify",
    "VerificationError": "fcn_edge.export.verify",
    "synthetic_frames": "fcn_edge.runtime.synthetic",
    "DeployableFCN": "fcn_edge.export.graph",
}

__all__ = sorted([
    "ExportConfig", "ExportConfigError", "ShapeRange", "ExportFacts", "read_onnx_metadata", "read_onnx_header",
    "apply_metadata", "check_external_data", "metadata_entries", "parse_metadata_props", "MODEL_KEY", "EXPORT_KEY",
    *_LAZY,
])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fcn_edge.export' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
