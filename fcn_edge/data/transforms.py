"""Geometry for training, evaluation and deployment, in numpy/OpenCV (no torch).

Interpolation, decided once for every stage:

* images: ``cv2.INTER_LINEAR`` (bilinear).  It is what cameras' scalers, TensorRT's
  resize layers and GPU texture units do cheaply, it is exactly reproducible across
  OpenCV builds for uint8, and FCN's own training scaled images bilinearly.  INTER_AREA
  would alias less when shrinking a lot, but costs more on a Jetson's CPU per frame and
  would make eval and deployment disagree if only one used it.
* labels: ``cv2.INTER_NEAREST``: a class number must never be blended into another.

:func:`resize_for_network` is *the* resize between a frame and the network input: the
streaming runner, calibration and evaluation all call it, so every backend sees the same
pixels.  :func:`labels_to_size` maps a prediction back to the label/frame size.

Random transforms take a ``numpy.random.Generator`` and draw the same number of values
per call, so a given seed reproduces the same crops and flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fcn_edge.data.imageio import IGNORE_INDEX
from fcn_edge.lazy import opencv


def _size(size: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (H, W), got {tuple(size)}")
    return h, w


# --------------------------------------------------------------------------- resizing

def resize_for_network(frame: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize a uint8 HxWx3 frame to ``size`` = (H, W) with bilinear interpolation.

    Returns ``frame`` itself (no copy) when it already has that size.  The one resize
    every stage shares; see the module doc for why INTER_LINEAR.
    """
    h, w = _size(size)
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames are HxWx3, got shape {frame.shape}")
    if frame.shape[:2] == (h, w):
        return frame
    return opencv().resize(frame, (w, h), interpolation=opencv().INTER_LINEAR)


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of any HxW or HxWxC image to (H, W) (same rule as resize_for_network)."""
    h, w = _size(size)
    if image.shape[:2] == (h, w):
        return image
    return opencv().resize(image, (w, h), interpolation=opencv().INTER_LINEAR)


def resize_labels(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (HxW) to (H, W): labels are never blended."""
    h, w = _size(size)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label maps are HxW, got shape {labels.shape}")
    if labels.shape == (h, w):
        return labels
    if labels.dtype in (np.uint8, np.uint16, np.int16, np.int32, np.float32):
        return opencv().resize(labels, (w, h), interpolation=opencv().INTER_NEAREST)
    return resize_labels(labels.astype(np.int32), (h, w)).astype(labels.dtype)


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
