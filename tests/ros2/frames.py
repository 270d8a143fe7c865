"""The frames the ROS 2 tests send, made the same way on both sides of the namespace."""

from __future__ import annotations

from tests.onnx_models import moving_frames

FRAME_SIZE = (96, 128)  # not the tiny model's 64x96: the node resizes as `fcn-edge run` does


def sent_frames(count: int = 4):
    return moving_frames(count, FRAME_SIZE, seed=3)
