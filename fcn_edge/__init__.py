"""fcn-edge: FCN semantic segmentation from PyTorch to TensorRT on edge GPUs.

The top-level package imports nothing heavy: a Jetson that only runs engines imports
``fcn_edge.runtime`` and ``fcn_edge.stream`` without torch or tensorrt installed.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
