"""The artifact contract: what an fcn-edge file *is*, readable wherever the model runs.

The device half of fcn-edge (``runtime/``, ``stream/``, ``api.py``, ``bench/``, ``info``,
``doctor``, ``serve/``) and the build half (``export/``, ``calib/``, ``engine/``, ...) both
import this package; it imports only the standard library, numpy and fcn-edge's foundation
modules (``errors``, ``fileio``, ``lazy``, the version) -- never torch, onnx, onnxruntime or
tensorrt, not even inside functions (``tests/test_layers.py`` checks the import graph).

* :mod:`.modelinfo`      -- :class:`ModelInfo`, :class:`Preprocessing`, ``label_dtype``,
  ``parse_size``: the description every artifact carries.
* :mod:`.onnx_metadata`  -- the ``fcn_edge.*`` ONNX ``metadata_props`` keys,
  :class:`ExportFacts`, :func:`parse_metadata_props`, :func:`read_onnx_metadata`,
  :func:`read_onnx_header`, the external-data checks.
* :mod:`.protowire`      -- the ONNX header reader (protobuf wire format, no onnx).
* :mod:`.sidecar`        -- the engine sidecar (``<engine>.json``): schema, reading,
  writing, compatibility checks, load settings.
* :mod:`.trt_versions`   -- TensorRT version parsing and per-version feature tables.
* :mod:`.trt_tables`     -- TensorRT dtype names and the engine I/O record.
* :mod:`.gpu`            -- the GPU probe (CUDA driver through ctypes, no CUDA package).
"""

from __future__ import annotations

from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing, label_dtype, parse_size
from fcn_edge.artifacts.onnx_metadata import (
    EXPORT_KEY, MODEL_KEY, ExportFacts, check_external_data, check_onnx_file_external_data, metadata_entries,
    parse_metadata_props, read_onnx_header, read_onnx_metadata,
)
from fcn_edge.artifacts.sidecar import EngineSidecar, read_sidecar, sidecar_path_for

__all__ = [
    "EXPORT_KEY", "MODEL_KEY", "EngineSidecar", "ExportFacts", "ModelInfo", "Preprocessing",
    "check_external_data", "check_onnx_file_external_data", "label_dtype", "metadata_entries", "parse_metadata_props",
    "parse_size", "read_onnx_header", "read_onnx_metadata", "read_sidecar", "sidecar_path_for",
]
