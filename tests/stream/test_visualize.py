from __future__ import annotations

import numpy as np
import pytest

from fcn_edge.errors import FcnEdgeError
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.stream.visualize import ViewOptions, Visualizer, palette_lut


@pytest.fixture
def info():
    return ModelInfo(num_classes=3, class_names=["background", "road", "car"],
                     palette=[(0, 0, 0), (255, 0, 0), (0, 0, 255)])


def test_palette_is_rgb_in_the_model_and_bgr_on_screen(info):
    lut = palette_lut(info)
    assert tuple(lut[1]) == (0, 0, 255) and tuple(lut[2]) == (255, 0, 0)
    assert tuple(lut[200]) == (128, 128, 128)


def test_overlay_blends_classes_and_leaves_background(info):
    frame = np.full((4, 4, 3), 100, np.uint8)
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0] = 1
    out = Visualizer(info, ViewOptions(alpha=0.5)).render(frame, labels)
    assert tuple(out[0, 0]) == (50, 50, 178) or tuple(out[0, 0]) == (50, 50, 177)
    assert tuple(out[1, 1]) == (100, 100, 100)


def test_modes_legend_and_text(info):
    frame = np.full((80, 120, 3), 100, np.uint8)
    labels = np.zeros((80, 120), np.uint8)
    labels[:, 60:] = 2
    mask = Visualizer(info, ViewOptions(mode="mask", text=False)).render(frame, labels)
    assert tuple(mask[0, 100]) == (255, 0, 0) and tuple(mask[0, 0]) == (0, 0, 0)
    both = Visualizer(info, ViewOptions(mode="side-by-side", text=False)).render(frame, labels)
    assert both.shape == (80, 240, 3)
    plain = Visualizer(info, ViewOptions(mode="frame", text=False)).render(frame, labels)
    np.testing.assert_array_equal(plain, frame)
    drawn = Visualizer(info, ViewOptions(mode="frame", legend=True)).render(frame, labels, ["12.0 FPS"])
    assert (drawn[:20, :60] != 100).any() and (drawn[:20, -60:] != 100).any()
    with pytest.raises(FcnEdgeError):
        ViewOptions(mode="heatmap")
    with pytest.raises(FcnEdgeError):
        ViewOptions(alpha=2)
