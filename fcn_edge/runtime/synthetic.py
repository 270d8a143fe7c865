"""Deterministic synthetic frames: what export verification and ``fcn-edge bench`` feed a model.

Device side (numpy only), so ``fcn-edge bench`` on a robot makes the same frames as the
export's ONNX Runtime vs PyTorch check for the same seed.
"""

from __future__ import annotations

import numpy as np


def synthetic_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``count`` uint8 frames ``[count, H, W, 3]`` cycling through three kinds of content."""
    rng = np.random.default_rng(seed)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            frames[i] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        elif kind == 1:
            img = np.empty((height, width, 3), dtype=np.float32)
            for c in range(3):
                a, b, p = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
                img[..., c] = 127.5 + 120 * np.sin(a * xx / max(width, 1) * 6 + b * yy / max(height, 1) * 6 + p)
            for _ in range(3):  # a few flat-coloured discs, like objects on a background
                cy, cx = rng.uniform(0, height), rng.uniform(0, width)
                r = rng.uniform(0.1, 0.3) * max(height, width)
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
            frames[i] = np.clip(img, 0, 255).astype(np.uint8)
        else:
            frames[i] = np.clip(rng.normal(128, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    return frames
