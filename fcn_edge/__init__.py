"""fcn-edge: FCN semantic segmentation from PyTorch to TensorRT on edge GPUs.

The top-level package imports nothing heavy: a Jetson that only runs engines imports
``fcn_edge.runtime`` and ``fcn_edge.stream`` without torch or tensorrt installed.
``fcn_edge.Segmenter`` (the Python API, :mod:`fcn_edge.api`) is loaded on first access.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Segmenter", "Result"]


def __getattr__(name: str):
    if name in ("Segmenter", "Result"):
        from fcn_edge import api

        return getattr(api, name)
    raise AttributeError(f"module 'fcn_edge' has no attribute {name!r}")
