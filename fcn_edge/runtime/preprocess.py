"""Host-side preprocessing for raw-I/O models: the numpy twin of the exported graph's normalisation.

Models exported with ``--io frames`` normalise inside the graph; raw-I/O models
(``float32 [N, 3, H, W]`` in) need the same arithmetic on the host: reorder channels if
the camera's order differs from the model's, then ``(pixel * scale - mean) / std``.
:func:`to_network_input` is that rule for one image; training, evaluation and
calibration use it too (through :mod:`fcn_edge.data.transforms`), so every stage
normalises alike.  numpy only.
"""

from __future__ import annotations

import numpy as np

from fcn_edge.artifacts.modelinfo import Preprocessing


def to_network_input(image: np.ndarray, preprocessing) -> np.ndarray:
    """uint8 HxWx3 (input channel order) -> float32 3xHxW normalised as ``preprocessing`` says.

    The numpy twin of the exported graph's in-graph preprocessing; torch training and the
    raw-I/O backends use it.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"images are HxWx3, got shape {image.shape}")
    x = image.astype(np.float32)
    if preprocessing.needs_channel_swap:
        x = x[:, :, ::-1]
    x = x * np.float32(preprocessing.scale)
    x -= np.asarray(preprocessing.mean, dtype=np.float32)
    x /= np.asarray(preprocessing.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def frames_to_raw(frames: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` frames (or one ``HxWx3``) -> normalised float32 ``[N, 3, H, W]``."""
    if frames.ndim == 3:
        frames = frames[None]
    return np.stack([to_network_input(frame, preprocessing) for frame in frames])
