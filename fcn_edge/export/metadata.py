"""Writing the ``fcn_edge.*`` metadata into an ``onnx.ModelProto``: the build half's side of the contract.

The keys, :class:`ExportFacts` and the one parser live in the artifact layer
(:mod:`fcn_edge.artifacts.onnx_metadata`), which the device half reads without onnx;
this module only adds what touches an ONNX model object.
"""

from __future__ import annotations

from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.artifacts.onnx_metadata import KEY_PREFIX, ExportFacts, metadata_entries


def apply_metadata(model, info: ModelInfo, facts: ExportFacts) -> None:
    """Replace the ``fcn_edge.*`` entries of an ``onnx.ModelProto`` (others are kept)."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(KEY_PREFIX)]
    del model.metadata_props[:]
    for key, value in kept + list(metadata_entries(info, facts).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "fcn-edge"
    model.producer_version = facts.fcn_edge_version
    model.doc_string = (f"fcn-edge {info.arch} ({info.num_classes} classes, {facts.geometry} geometry): "
                        f"{facts.input} -> {', '.join(facts.outputs)}")
