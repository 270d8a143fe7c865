"""Geometry for training, evaluation and deployment, in numpy/OpenCV (no torch).

Interpolation is decided once for every stage (bilinear images, nearest labels): the reasons are in
:mod:`fcn_edge.runtime.resize`.

:func:`resize_for_network` is *the* resize between a frame and the network input: the
streaming runner, calibration and evaluation all call it, so every backend sees the same
pixels.  It, ``resize_image``, ``resize_labels`` and ``to_network_input`` live on the device
side (:mod:`fcn_edge.runtime.resize`, :mod:`fcn_edge.runtime.preprocess`) and are
re-exported here: training uses the run-time code, never the other way round.
:func:`labels_to_size` maps a prediction back to the label/frame size.

Random transforms take a ``numpy.random.Generator`` and draw the same number of values
per call, so a given seed reproduces the same crops and flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fcn_edge.data.imageio import IGNORE_INDEX
from fcn_edge.lazy import opencv
from fcn_edge.runtime.preprocess import to_network_input  # noqa: F401 - re-exported
from fcn_edge.runtime.resize import _size, resize_for_network, resize_image, resize_labels  # noqa: F401


def labels_to_size(prediction: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Map a prediction made at network size back to the label (or frame) size, nearest-neighbour."""
    return resize_labels(prediction, size)


# --------------------------------------------------------------------------- pieces

def hflip(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror left-right (image and mask together)."""
    image = np.ascontiguousarray(image[:, ::-1])
    return image, (np.ascontiguousarray(mask[:, ::-1]) if mask is not None else None)


def scale(image: np.ndarray, mask: np.ndarray | None, factor: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale by ``factor`` (bilinear image, nearest mask); sizes round to the nearest pixel."""
    h, w = image.shape[:2]
    size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    return resize_image(image, size), (resize_labels(mask, size) if mask is not None else None)


def pad_to(image: np.ndarray, mask: np.ndarray | None, size: Sequence[int], *,
           fill: Sequence[int] = (0, 0, 0), ignore_index: int = IGNORE_INDEX
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Pad bottom/right up to at least ``size``: image with ``fill`` (BGR), mask with ``ignore_index``.

    Padding the mask with the ignore label means the padded pixels never count in the
    loss; padding the image with the mean colour makes them zero after normalisation.
    """
    h, w = _size(size)
    pad_h, pad_w = max(0, h - image.shape[0]), max(0, w - image.shape[1])
    if not pad_h and not pad_w:
        return image, mask
    cv2 = opencv()
    image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=tuple(int(v) for v in fill))
    if mask is not None:
        mask = cv2.copyMakeBorder(mask, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=int(ignore_index))
    return image, mask


def crop(image: np.ndarray, mask: np.ndarray | None, top: int, left: int, size: Sequence[int]
         ) -> tuple[np.ndarray, np.ndarray | None]:
    h, w = _size(size)
    image = np.ascontiguousarray(image[top:top + h, left:left + w])
    return image, (np.ascontiguousarray(mask[top:top + h, left:left + w]) if mask is not None else None)


def mean_fill_colour(preprocessing) -> tuple[int, int, int]:
    """The BGR 0-255 colour that normalises to zero under ``preprocessing`` (a Preprocessing).

    The best padding for images: after ``(pixel * scale - mean) / std`` it is 0, the same
    as the network's own zero padding, so a padded border carries no signal.
    """
    colour = [m / preprocessing.scale for m in preprocessing.mean]  # in the model's channel order
    if preprocessing.model_channel_order != "BGR":
        colour = colour[::-1]
    return tuple(int(round(min(255.0, max(0.0, c)))) for c in colour)  # type: ignore[return-value]


# --------------------------------------------------------------------------- pipelines

@dataclass
class TrainTransform:
    """Random scale, pad (mask with 255), random crop and horizontal flip.

    ``crop_size`` (H, W) or None (no crop, whole scaled image); ``scale_range`` the
    uniform range of the scale factor (``(1, 1)`` disables scaling); ``fill`` the BGR
    image padding colour (see :func:`mean_fill_colour`).
    """

    crop_size: tuple[int, int] | None = (128, 128)
    scale_range: tuple[float, float] = (0.5, 1.5)
    flip: bool = True
    fill: tuple[int, int, int] = (0, 0, 0)
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.scale_range)
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        self.scale_range = (low, high)
        if self.crop_size is not None:
            self.crop_size = _size(self.crop_size)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        # Always draw the same four numbers, so a seed gives the same result whatever applies.
        factor, u_top, u_left, u_flip = rng.uniform(self.scale_range[0], self.scale_range[1]), *rng.random(3)
        if factor != 1.0:
            image, mask = scale(image, mask, factor)
        if self.crop_size is not None:
            image, mask = pad_to(image, mask, self.crop_size, fill=self.fill, ignore_index=self.ignore_index)
            top = int(u_top * (image.shape[0] - self.crop_size[0] + 1))
            left = int(u_left * (image.shape[1] - self.crop_size[1] + 1))
            image, mask = crop(image, mask, top, left, self.crop_size)
        if self.flip and u_flip < 0.5:
            image, mask = hflip(image, mask)
        return image, mask


@dataclass
class EvalTransform:
    """Evaluation: optionally resize the image to a fixed network size; the mask is untouched.

    Scores are computed on the original mask: map the prediction back with
    :meth:`restore` (nearest-neighbour), so resizing never changes the ground truth.
    """

    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.size is not None:
            self.size = _size(self.size)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if self.size is not None:
            image = resize_for_network(image, self.size)
        return image, mask

    @staticmethod
    def restore(prediction: np.ndarray, label_size: Sequence[int]) -> np.ndarray:
        """The prediction at the label's (H, W)."""
        return labels_to_size(prediction, label_size)
