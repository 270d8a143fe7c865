"""fcn-edge build-engine: ONNX -> TensorRT engine + JSON sidecar, for TensorRT 8.5, 8.6, 10.x and 11.x.

Only :mod:`fcn_edge.engine.trt_build` calls TensorRT; everything else is plain Python
tested without TensorRT or a GPU (option resolution per TensorRT version, profiles,
FP16 conversion, DLA pre-check, sidecar, cache).  See README.md in this folder for the
versions targeted and what has (not yet) run on real TensorRT.

Importing this package imports nothing heavy (no onnx, tensorrt, torch).  What the device
reads too -- the sidecar schema, the GPU probe, the TensorRT version and dtype tables -- is in
:mod:`fcn_edge.artifacts`; loading an engine is :mod:`fcn_edge.runtime.trt_load`.
"""
