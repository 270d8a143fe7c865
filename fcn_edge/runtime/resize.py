"""Resizing frames to the network and class maps back to the frame.

One small pair of functions for the stream runner and :class:`fcn_edge.api.Segmenter`
(the data layer has its own ``resize_for_network`` for datasets; the two should be
unified): frames are resized with bilinear interpolation (aspect ratio not kept: the
network sees the whole field of view), class maps come back with nearest-neighbour so
no invented class ids appear on boundaries, confidence maps bilinearly.
"""

from __future__ import annotations

import numpy as np

from fcn_edge.lazy import require


def _cv2():
    return require("cv2", purpose="to resize frames")


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxWx3`` uint8 frame -> ``size`` (H, W) with cv2.INTER_LINEAR; no copy when already that size."""
    h, w = int(size[0]), int(size[1])
    if frame.shape[0] == h and frame.shape[1] == w:
        return frame
    cv2 = _cv2()
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxW`` class map -> ``size`` (H, W) with nearest-neighbour (class ids stay class ids)."""
    h, w = int(size[0]), int(size[1])
    if labels.shape[0] == h and labels.shape[1] == w:
        return labels
    cv2 = _cv2()
    if labels.dtype == np.uint8 or labels.dtype == np.int32 or labels.dtype == np.float32:
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST).astype(labels.dtype)


def resize_confidence(confidence: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxW`` float map -> ``size`` (H, W) bilinearly."""
    h, w = int(size[0]), int(size[1])
    if confidence.shape[0] == h and confidence.shape[1] == w:
        return confidence
    cv2 = _cv2()
    return cv2.resize(confidence.astype(np.float32, copy=False), (w, h), interpolation=cv2.INTER_LINEAR)
