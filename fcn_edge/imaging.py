"""Robust reading of image files, for run time (``fcn-edge run`` on an image) and datasets alike.

Images come back in one form whatever the file holds: ``uint8`` ``HxWx3`` in BGR order
(OpenCV's and most cameras' order, and the order the deployed model's ``frames`` input
takes).  Conversions are applied and recorded as notes (:class:`LoadedImage.notes`):

* grayscale (1 channel)        -> the gray value copied into B, G and R;
* grayscale + alpha, BGRA       -> alpha dropped (no compositing: a segmentation label
  belongs to the pixel, not to what it would look like over some background);
* 16-bit                        -> ``round(value * 255 / 65535)`` (full range, not
  stretched per image, so two exposures of one scene keep their relation);
* EXIF orientation is ignored: pixels are used in stored order, as PIL-made masks of
  VOC-style datasets are aligned to the stored order.

Every failure is a :class:`~fcn_edge.errors.DataError` that names the file: missing,
empty, unreadable, truncated or of an unsupported kind.  Device side: numpy and OpenCV
(imported when the first image is decoded), nothing of the training data code;
:mod:`fcn_edge.data.imageio` builds masks and datasets on top of this.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcn_edge.errors import DataError
from fcn_edge.lazy import opencv, opencv_log_level

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")

NOTE_GRAYSCALE = "grayscale image expanded to 3 identical BGR channels"
NOTE_ALPHA = "alpha channel dropped"
NOTE_16BIT = "16-bit image scaled to 8-bit (value * 255 / 65535, rounded)"

# Larger than any camera or dataset image; stops a corrupt header from asking for GBs.
MAX_PIXELS = 1 << 28


def _quiet_opencv():
    """Silence OpenCV's own log lines while decoding: our DataError says it better."""
    return opencv_log_level("LOG_LEVEL_SILENT")


# --------------------------------------------------------------------------- reading bytes

def read_file_bytes(path: str | os.PathLike, what: str = "image") -> bytes:
    """The bytes of ``path``; DataError when it is missing, a folder, empty or unreadable."""
    path = Path(path)
    try:
        if path.is_dir():
            raise DataError(f"{what} {path} is a folder, not a file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not data:
        raise DataError(f"{what} {path} is empty (0 bytes); replace or remove it")
    return data


def _imdecode(data: bytes, flags: int, name: str, what: str) -> np.ndarray:
    cv2 = opencv()
    if not data:
        raise DataError(f"{what} {name} is empty (0 bytes); replace or remove it")
    try:
        with _quiet_opencv():
            array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        raise DataError(f"{what} {name} cannot be decoded ({_first_line(exc)}); is it a valid image file?") from None
    if array is None or array.size == 0:
        raise DataError(f"{what} {name} cannot be decoded: not a supported image format, or the file is "
                        "truncated or corrupt; replace or remove it")
    return array


def _check_not_truncated_jpeg(data: bytes, name: str, what: str) -> None:
    """Some libjpeg builds decode a cut-off JPEG into a half-grey image without an error.

    A complete JPEG has an end-of-image marker (FFD9) after its first start-of-scan
    segment.  The header segments are walked by their lengths (so an EXIF thumbnail's
    own markers are skipped), then FFD9 is searched after the scan starts: inside
    entropy-coded data a 0xFF byte is always stuffed, so FFD9 there can only be the
    real end.  Data appended after the end (phones' "motion photos") is fine.
    """
    if data[:2] != b"\xff\xd8":
        return
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return  # not a marker where one should be: leave the verdict to the decoder
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        if marker == 0xD9:  # end of image before any scan: let the decoder judge
            return
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:  # start of scan
            if data.find(b"\xff\xd9", position + 2 + length) == -1:
                break
            return
        position += 2 + length
    raise DataError(f"{what} {name} is a truncated JPEG (no end-of-image marker); replace or remove it")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1].strip()[:200] if text else type(exc).__name__


# --------------------------------------------------------------------------- images

@dataclass
class LoadedImage:
    """A decoded image: ``pixels`` uint8 HxWx3 BGR, and the conversions that made it so."""

    pixels: np.ndarray
    name: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file as uint8 HxWx3 BGR, with notes on any conversion applied."""
    return decode_image(read_file_bytes(path, "image"), str(path))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 HxWx3 BGR (see the module notes for conversions)."""
    return load_image(path).pixels


def decode_image(data: bytes, name: str = "<bytes>") -> LoadedImage:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF, WebP, PNM) to uint8 HxWx3 BGR."""
    cv2 = opencv()
    _check_not_truncated_jpeg(data, name, "image")
    array = _imdecode(data, cv2.IMREAD_UNCHANGED, name, "image")
    return LoadedImage(*_to_bgr8(array, name))


def _to_bgr8(array: np.ndarray, name: str) -> tuple[np.ndarray, str, tuple[str, ...]]:
    cv2 = opencv()
    notes: list[str] = []
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"image {name} has an unusable shape {array.shape}")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise DataError(f"image {name} is too large ({array.shape[1]}x{array.shape[0]} pixels)")
    if array.dtype == np.uint16:
        array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        notes.append(NOTE_16BIT)
    elif array.dtype != np.uint8:
        raise DataError(f"image {name} holds {array.dtype} pixels; only 8- and 16-bit images are supported "
                        "(convert it to 8-bit PNG or JPEG)")
    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels == 1:
        array = cv2.cvtColor(array.reshape(array.shape[:2]), cv2.COLOR_GRAY2BGR)
        notes.append(NOTE_GRAYSCALE)
    elif channels == 2:  # gray + alpha
        array = cv2.cvtColor(np.ascontiguousarray(array[:, :, 0]), cv2.COLOR_GRAY2BGR)
        notes += [NOTE_ALPHA, NOTE_GRAYSCALE]
    elif channels == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
        notes.append(NOTE_ALPHA)
    elif channels != 3:
        raise DataError(f"image {name} has {channels} channels; expected 1, 3 or 4")
    return np.ascontiguousarray(array), name, tuple(notes)
