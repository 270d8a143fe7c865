"""Resizing frames to the network and class maps back to the frame, for the runner and Segmenter.

These are the data layer's functions (:mod:`fcn_edge.data.transforms`), so training,
evaluation, calibration and streaming all resize with the same rule: frames bilinearly
(aspect ratio not kept: the network sees the whole field of view), class maps with
nearest-neighbour (no invented class ids on boundaries), confidence maps bilinearly.
Importing :mod:`fcn_edge.data` costs only numpy.
"""

from __future__ import annotations

import numpy as np

from fcn_edge.data.transforms import resize_for_network as resize_frame
from fcn_edge.data.transforms import resize_image, resize_labels

__all__ = ["resize_frame", "resize_labels", "resize_confidence"]


def resize_confidence(confidence: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxW`` float map -> ``size`` (H, W) bilinearly."""
    return resize_image(np.asarray(confidence, dtype=np.float32), size)
