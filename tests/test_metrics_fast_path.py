"""ConfusionMatrix's uint8 fast path agrees with the general path in every corner."""

from __future__ import annotations

import numpy as np
import pytest

from fcn_edge.metrics import ConfusionMatrix


@pytest.mark.parametrize("classes, ignore", [(21, 255), (5, 255), (5, 2), (5, None), (300, 255), (256, None)])
def test_uint8_matches_int64(classes, ignore):
    rng = np.random.default_rng(classes)
    target = rng.integers(0, 256, (37, 53)).astype(np.uint8)
    target[target >= min(classes, 256)] = 255
    target[::7, ::3] = 200 if classes < 200 else 255  # truth outside the classes: skipped like ignore
    target[5, 5] = ignore if ignore is not None else 0
    prediction = rng.integers(0, min(classes, 256), (37, 53)).astype(np.uint8)
    fast = ConfusionMatrix(classes, ignore_index=ignore).update(target, prediction)
    slow = ConfusionMatrix(classes, ignore_index=ignore).update(target.astype(np.int64), prediction.astype(np.int64))
    np.testing.assert_array_equal(fast.matrix, slow.matrix)
    assert fast.matrix.sum() > 0


def test_uint8_prediction_out_of_range_is_an_error_except_on_ignored_pixels():
    target = np.array([[0, 1, 255]], np.uint8)
    ConfusionMatrix(3).update(target, np.array([[0, 1, 9]], np.uint8))  # 9 sits on an ignored pixel
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(3).update(target, np.array([[0, 7, 0]], np.uint8))
