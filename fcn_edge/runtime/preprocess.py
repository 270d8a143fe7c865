"""Host-side preprocessing for raw-I/O models, the numpy twin of the exported graph's.

Models exported with ``--io frames`` normalise inside the graph; raw-I/O models
(``float32 [N, 3, H, W]`` in) need the same arithmetic on the host.  It is written once
here from :class:`fcn_edge.modelinfo.Preprocessing` so every backend agrees with the
graph: reorder channels if the camera's order differs from the model's, then
``(pixel * scale - mean) / std`` per channel.
"""

from __future__ import annotations

import numpy as np

from fcn_edge.modelinfo import Preprocessing


def frames_to_raw(frames: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` frames -> normalised float32 ``[N, 3, H, W]``."""
    if frames.ndim == 3:
        frames = frames[None]
    x = frames.astype(np.float32)
    if preprocessing.needs_channel_swap:
        x = x[..., ::-1]
    mean = np.asarray(preprocessing.mean, np.float32)
    inv_std = 1.0 / np.asarray(preprocessing.std, np.float32)
    x = (x * np.float32(preprocessing.scale) - mean) * inv_std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
