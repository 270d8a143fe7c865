"""Host-side preprocessing for raw-I/O models: batches through the data layer's one rule.

Models exported with ``--io frames`` normalise inside the graph; raw-I/O models
(``float32 [N, 3, H, W]`` in) need the same arithmetic on the host.  That arithmetic
is :func:`fcn_edge.data.transforms.to_network_input` (reorder channels if the
camera's order differs from the model's, then ``(pixel * scale - mean) / std``), which
training, evaluation and calibration use too; this applies it to a batch.  Importing
:mod:`fcn_edge.data` costs only numpy.
"""

from __future__ import annotations

import numpy as np

from fcn_edge.data.transforms import to_network_input
from fcn_edge.modelinfo import Preprocessing


def frames_to_raw(frames: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` frames (or one ``HxWx3``) -> normalised float32 ``[N, 3, H, W]``."""
    if frames.ndim == 3:
        frames = frames[None]
    return np.stack([to_network_input(frame, preprocessing) for frame in frames])
