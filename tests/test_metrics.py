"""The paper's four metrics, checked against hand-computed confusion matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fcn_edge.metrics import ConfusionMatrix, pixel_agreement


def test_hand_computed_three_classes():
    target = np.array([[0, 0, 1, 1], [2, 2, 2, 255]], dtype=np.uint8)
    predict = np.array([[0, 1, 1, 1], [2, 2, 0, 1]], dtype=np.uint8)
    cm = ConfusionMatrix(3).update(target, predict)
    # rows truth, cols prediction; the 255 pixel is ignored
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    np.testing.assert_array_equal(cm.matrix, expected)
    s = cm.scores()
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)
    assert s["mean_accuracy"] == pytest.approx((1 / 2 + 2 / 2 + 2 / 3) / 3)
    iu = [1 / (2 + 2 - 1), 2 / (2 + 3 - 2), 2 / (3 + 2 - 2)]
    assert s["iu"] == pytest.approx(iu)
    assert s["mean_iu"] == pytest.approx(sum(iu) / 3)
    assert s["fw_iu"] == pytest.approx((2 * iu[0] + 2 * iu[1] + 3 * iu[2]) / 7)
    assert s["pixels"] == 7


def test_absent_classes_do_not_count_but_false_positives_do():
    target = np.array([0, 0, 1, 1])
    predict = np.array([0, 0, 1, 3])  # class 2 absent everywhere, class 3 only predicted
    s = ConfusionMatrix(4).update(target, predict).scores()
    assert s["iu"][2] is None
    assert s["iu"][3] == 0.0
    assert s["mean_iu"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert s["mean_accuracy"] == pytest.approx((1.0 + 0.5) / 2)


def test_accumulates_over_updates_and_any_integer_dtype():
    rng = np.random.default_rng(0)
    a = ConfusionMatrix(5)
    b = ConfusionMatrix(5)
    whole_t, whole_p = [], []
    for dtype in (np.uint8, np.int32, np.int64, np.uint16):
        t = rng.integers(0, 5, (8, 9)).astype(dtype)
        p = rng.integers(0, 5, (8, 9)).astype(dtype)
        a.update(t, p)
        whole_t.append(t.astype(np.int64))
        whole_p.append(p.astype(np.int64))
    b.update(np.concatenate(whole_t), np.concatenate(whole_p))
    np.testing.assert_array_equal(a.matrix, b.matrix)


def test_perfect_prediction_and_empty():
    t = np.array([[1, 2], [0, 255]])
    s = ConfusionMatrix(3).update(t, np.where(t == 255, 0, t)).scores()
    assert s["pixel_accuracy"] == s["mean_iu"] == s["fw_iu"] == s["mean_accuracy"] == 1.0
    assert math.isnan(ConfusionMatrix(3).scores()["mean_iu"])


def test_bad_predictions_and_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(3).update(np.zeros(4, int), np.array([0, 1, 2, 3]))


def test_pixel_agreement():
    assert pixel_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
