"""Drawing results: colour mask, overlay, side by side, class legend, FPS/latency text.

Colours come from the model's palette (``ModelInfo.palette``, RGB) through a 256-entry
lookup table, so colouring a class map is one numpy take.  In ``overlay`` mode classes
whose palette colour is black (VOC's background) leave the frame untouched instead of
darkening it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import opencv
from fcn_edge.artifacts.modelinfo import ModelInfo

VIEW_MODES = ("overlay", "mask", "side-by-side", "frame")


@dataclass
class ViewOptions:
    mode: str = "overlay"
    alpha: float = 0.5
    legend: bool = False
    text: bool = True

    def __post_init__(self) -> None:
        if self.mode not in VIEW_MODES:
            raise FcnEdgeError(f"view must be one of {', '.join(VIEW_MODES)}, got {self.mode!r}")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise FcnEdgeError(f"alpha must be between 0 and 1, got {self.alpha}")
        self.alpha = float(self.alpha)


def palette_lut(info: ModelInfo, size: int = 256) -> np.ndarray:
    """``size x 3`` BGR lookup table from the model's RGB palette (ids past the palette: grey)."""
    lut = np.full((max(size, info.num_classes), 3), 128, np.uint8)
    for index, (r, g, b) in enumerate(info.palette):
        lut[index] = (b, g, r)
    return lut


class Visualizer:
    def __init__(self, info: ModelInfo, options: ViewOptions | None = None) -> None:
        self.info = info
        self.options = options or ViewOptions()
        self.lut = palette_lut(info)
        self._keep = np.all(self.lut == 0, axis=1)  # classes drawn as "no overlay"

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Class map ``HxW`` -> BGR colour image ``HxWx3``."""
        index = labels if labels.dtype == np.uint8 else np.clip(labels, 0, len(self.lut) - 1)
        return self.lut[index]

    def overlay(self, frame: np.ndarray, labels: np.ndarray, alpha: float | None = None) -> np.ndarray:
        cv2 = opencv()
        alpha = self.options.alpha if alpha is None else alpha
        colour = self.colorize(labels)
        blended = cv2.addWeighted(frame, 1.0 - alpha, colour, alpha, 0.0)
        if self._keep.any():
            index = labels if labels.dtype == np.uint8 else np.clip(labels, 0, len(self.lut) - 1)
            keep = self._keep[index]
            blended[keep] = frame[keep]
        return blended

    def render(self, frame: np.ndarray, labels: np.ndarray, text_lines: Sequence[str] = ()) -> np.ndarray:
        mode = self.options.mode
        if mode == "frame":
            image = frame.copy()
        elif mode == "mask":
            image = self.colorize(labels)
        elif mode == "overlay":
            image = self.overlay(frame, labels)
        else:
            image = np.hstack([frame, self.overlay(frame, labels)])
        if self.options.legend:
            self.draw_legend(image, labels)
        if self.options.text and text_lines:
            draw_text(image, text_lines)
        return image

    def draw_legend(self, image: np.ndarray, labels: np.ndarray, max_entries: int = 12) -> None:
        """Colour swatch and name of each class present, largest first, in the top-right corner."""
        cv2 = opencv()
        counts = np.bincount(labels.ravel().astype(np.int64), minlength=self.info.num_classes)
        present = [int(c) for c in np.argsort(-counts) if counts[c] > 0][:max_entries]
        if not present:
            return
        scale, thickness = 0.45, 1
        names = [self.info.class_names[c] if c < len(self.info.class_names) else str(c) for c in present]
        width = max(cv2.getTextSize(n, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for n in names) + 30
        row = 18
        x0 = max(0, image.shape[1] - width - 6)
        y0 = 6
        box = image[y0:y0 + row * len(present) + 4, x0:x0 + width]
        box[:] = (box.astype(np.uint16) // 3).astype(np.uint8)
        for i, (cls, name) in enumerate(zip(present, names)):
            y = y0 + 4 + i * row
            colour = tuple(int(v) for v in self.lut[cls])
            cv2.rectangle(image, (x0 + 4, y), (x0 + 18, y + row - 6), colour, -1)
            cv2.putText(image, name, (x0 + 24, y + row - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                        thickness, cv2.LINE_AA)


def draw_text(image: np.ndarray, lines: Sequence[str], origin: tuple[int, int] = (6, 6)) -> None:
    """White text on a darkened band, top-left: readable on any background."""
    cv2 = opencv()
    scale, thickness, row = 0.5, 1, 18
    width = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for line in lines) + 10
    x0, y0 = origin
    band = image[y0:y0 + row * len(lines) + 6, x0:x0 + width]
    band[:] = (band.astype(np.uint16) // 3).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(image, line, (x0 + 5, y0 + row * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)
