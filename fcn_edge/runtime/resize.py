"""Resizing frames to the network and class maps back to the frame: the one rule every stage shares.

Interpolation, decided once for every stage (training, evaluation and calibration import
these from here through :mod:`fcn_edge.data.transforms`):

* images: ``cv2.INTER_LINEAR`` (bilinear).  It is what cameras' scalers, TensorRT's
  resize layers and GPU texture units do cheaply, it is exactly reproducible across
  OpenCV builds for uint8, and FCN's own training scaled images bilinearly.  INTER_AREA
  would alias less when shrinking a lot, but costs more on a Jetson's CPU per frame and
  would make eval and deployment disagree if only one used it.  The aspect ratio is not
  kept: the network sees the whole field of view.
* labels: ``cv2.INTER_NEAREST``: a class number must never be blended into another.
* confidence maps: bilinearly.

Device side: numpy, and OpenCV when the first resize happens.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fcn_edge.lazy import opencv

__all__ = ["resize_frame", "resize_for_network", "resize_image", "resize_labels", "resize_confidence"]


def _size(size: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (H, W), got {tuple(size)}")
    return h, w


def resize_for_network(frame: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize a uint8 HxWx3 frame to ``size`` = (H, W) with bilinear interpolation.

    Returns ``frame`` itself (no copy) when it already has that size.  The one resize
    every stage shares; see the module doc for why INTER_LINEAR.
    """
    h, w = _size(size)
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames are HxWx3, got shape {frame.shape}")
    if frame.shape[:2] == (h, w):
        return frame
    cv2 = opencv()
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of any HxW or HxWxC image to (H, W) (same rule as resize_for_network)."""
    h, w = _size(size)
    if image.shape[:2] == (h, w):
        return image
    cv2 = opencv()
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_labels(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (HxW) to (H, W): labels are never blended."""
    h, w = _size(size)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label maps are HxW, got shape {labels.shape}")
    if labels.shape == (h, w):
        return labels
    if labels.dtype in (np.uint8, np.uint16, np.int16, np.int32, np.float32):
        cv2 = opencv()
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return resize_labels(labels.astype(np.int32), (h, w)).astype(labels.dtype)


resize_frame = resize_for_network


def resize_confidence(confidence: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxW`` float map -> ``size`` (H, W) bilinearly."""
    return resize_image(np.asarray(confidence, dtype=np.float32), size)
