"""Robust reading and writing of images and label masks.

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

Masks are index images: each pixel is a class number, 255 is "ignore".  Palette
("P"-mode) PNGs, which is how VOC stores them, are read as their *indices*: OpenCV
would expand them to the palette's colours, so :func:`decode_mask` swaps the file's
palette for an identity palette (index ``i`` -> colour ``(i, i, i)``) before handing the
bytes to OpenCV; libpng then does all the decoding (filters, interlacing, 1/2/4/8-bit
depths) and the colour it returns *is* the index.  Plain 8-bit (or 16-bit with values
below 256) grayscale PNGs are read as they are.

Every failure is a :class:`~fcn_edge.errors.DataError` that names the file: missing,
empty, unreadable, truncated, of an unsupported kind, or (masks) holding label values
outside the classes.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fcn_edge.errors import DataError
from fcn_edge.lazy import opencv, opencv_log_level

IGNORE_INDEX = 255

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".pgm", ".pnm")

NOTE_GRAYSCALE = "grayscale image expanded to 3 identical BGR channels"
NOTE_ALPHA = "alpha channel dropped"
NOTE_16BIT = "16-bit image scaled to 8-bit (value * 255 / 65535, rounded)"

# Larger than any camera or dataset image; stops a corrupt header from asking for GBs.
MAX_PIXELS = 1 << 28

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def encode_image(image: np.ndarray, extension: str = ".png", *, jpeg_quality: int = 95) -> bytes:
    """Encode a uint8 HxWx3 BGR (or HxW) image; deterministic for a given OpenCV build."""
    cv2 = opencv()
    extension = extension if extension.startswith(".") else "." + extension
    extension = extension.lower()
    params: list[int] = []
    if extension in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif extension == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 6]
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images are written as uint8, got {image.dtype}")
    try:
        ok, buffer = cv2.imencode(extension, image, params)
    except cv2.error as exc:
        raise DataError(f"cannot encode an image as {extension}: {_first_line(exc)}") from None
    if not ok:
        raise DataError(f"OpenCV cannot write {extension} images in this build")
    return buffer.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray, *, jpeg_quality: int = 95) -> Path:
    """Write an image atomically; the format follows the file extension."""
    from fcn_edge.fileio import atomic_write_bytes

    path = Path(path)
    return atomic_write_bytes(path, encode_image(image, path.suffix or ".png", jpeg_quality=jpeg_quality))


# --------------------------------------------------------------------------- masks

def read_mask(path: str | os.PathLike, *, num_classes: int | None = None, ignore_index: int = IGNORE_INDEX,
              palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Read an index mask (uint8 HxW): palette PNG indices, or a grayscale index image.

    With ``num_classes`` the values are checked: anything ``>= num_classes`` that is not
    ``ignore_index`` is a DataError naming the file and the values.  A colour (RGB)
    mask is accepted only when ``palette`` (RGB colours, index = class) is given, or
    when its three channels are equal.
    """
    return decode_mask(read_file_bytes(path, "mask"), str(path), num_classes=num_classes,
                       ignore_index=ignore_index, palette=palette)


def decode_mask(data: bytes, name: str = "<bytes>", *, num_classes: int | None = None,
                ignore_index: int = IGNORE_INDEX, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Decode encoded mask bytes to uint8 HxW class indices (see :func:`read_mask`)."""
    cv2 = opencv()
    if data[:2] == b"\xff\xd8":
        raise DataError(f"mask {name} is a JPEG: lossy compression changes label values at every edge; "
                        "store masks as PNG")
    header = _png_header(data)
    if header is not None and header["colour_type"] == 3:
        mask = _decode_palette_indices(data, name, header)
    else:
        array = _imdecode(data, cv2.IMREAD_UNCHANGED, name, "mask")
        mask = _mask_from_array(array, name, palette)
    if num_classes is not None:
        check_labels(mask, num_classes, ignore_index=ignore_index, name=name)
    return mask


def _mask_from_array(array: np.ndarray, name: str, palette: Sequence[Sequence[int]] | None) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        colour = array[:, :, :3]
        if palette is not None:
            array = colours_to_indices(colour, palette, name)
        elif (colour[:, :, 0] == colour[:, :, 1]).all() and (colour[:, :, 1] == colour[:, :, 2]).all():
            array = colour[:, :, 0]
        else:
            raise DataError(f"mask {name} is a colour image, not an index mask; save it as a palette or "
                            "grayscale PNG whose values are class numbers (or pass the palette to map colours)")
    if array.ndim != 2 or array.size == 0:
        raise DataError(f"mask {name} has an unusable shape {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        high = int(array.max())
        if high > 255:
            raise DataError(f"mask {name} is 16-bit with label values up to {high}; labels must be 0-255 "
                            "(255 = ignore)")
        return array.astype(np.uint8)
    raise DataError(f"mask {name} holds {array.dtype} values; masks must be 8-bit index images")


def colours_to_indices(colour_bgr: np.ndarray, palette_rgb: Sequence[Sequence[int]], name: str = "<mask>") -> np.ndarray:
    """Map a colour-coded mask (BGR pixels) to indices through an RGB palette (index = class).

    Colours not in the palette are a DataError listing a few of them.
    """
    palette = np.asarray(palette_rgb, dtype=np.int64).reshape(-1, 3)
    if len(palette) > 256:
        raise ValueError("a palette has at most 256 colours")
    keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    c = colour_bgr.astype(np.int64)
    pixels = ((c[:, :, 2] << 16) | (c[:, :, 1] << 8) | c[:, :, 0]).ravel()
    position = np.clip(np.searchsorted(sorted_keys, pixels), 0, len(sorted_keys) - 1)
    found = sorted_keys[position] == pixels
    if not found.all():
        unknown = np.unique(pixels[~found])[:5]
        shown = ", ".join(f"({k >> 16},{(k >> 8) & 255},{k & 255})" for k in unknown)
        raise DataError(f"mask {name} has colours that are not in the palette (RGB {shown}); "
                        "it does not look like a mask of this dataset")
    return order[position].astype(np.uint8).reshape(colour_bgr.shape[:2])


def check_labels(mask: np.ndarray, num_classes: int, *, ignore_index: int | None = IGNORE_INDEX,
                 name: str = "<mask>") -> None:
    """DataError when ``mask`` holds values ``>= num_classes`` other than ``ignore_index``."""
    values = np.asarray(mask)
    if values.dtype == np.uint8:
        counts = np.bincount(values.ravel(), minlength=256)
        present = np.flatnonzero(counts)
    else:
        present = np.unique(values)
    bad = [int(v) for v in present if (v < 0 or v >= num_classes) and v != ignore_index]
    if bad:
        shown = ", ".join(str(v) for v in bad[:10]) + (" ..." if len(bad) > 10 else "")
        allowed = f"0..{num_classes - 1}" + (f" or {ignore_index} (ignore)" if ignore_index is not None else "")
        raise DataError(f"mask {name} has label values {shown} outside the {num_classes} classes "
                        f"(allowed: {allowed}); fix the mask or give the right number of classes")


# --------------------------------------------------------------------------- palette PNGs

def _png_header(data: bytes) -> dict | None:
    """IHDR facts of a PNG, or None when ``data`` is not a PNG (by signature)."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    if len(data) < 33 or data[12:16] != b"IHDR":
        return {"colour_type": -1}
    width, height, depth, colour_type, _compression, _filter, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return {"width": width, "height": height, "bit_depth": depth, "colour_type": colour_type,
            "interlace": interlace}


def _iter_png_chunks(data: bytes, name: str) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(type, body, raw chunk bytes) for each chunk; DataError on a cut-off chunk."""
    offset = len(_PNG_SIGNATURE)
    while offset < len(data):
        if offset + 8 > len(data):
            raise DataError(f"mask {name} is a truncated PNG (cut inside a chunk header); replace it")
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        end = offset + 12 + length
        if end > len(data):
            raise DataError(f"mask {name} is a truncated PNG (chunk {kind!r} is cut off); replace it")
        yield kind, data[offset + 8:offset + 8 + length], data[offset:end]
        offset = end
        if kind == b"IEND":
            return


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _decode_palette_indices(data: bytes, name: str, header: dict) -> np.ndarray:
    """Indices of a palette PNG: swap in an identity palette, let libpng decode, read a channel."""
    cv2 = opencv()
    depth = header["bit_depth"]
    width, height = header["width"], header["height"]
    if depth not in (1, 2, 4, 8):
        raise DataError(f"mask {name} is a palette PNG with an invalid bit depth {depth}")
    if width == 0 or height == 0 or width * height > MAX_PIXELS:
        raise DataError(f"mask {name} has an unusable size {width}x{height}")
    entries = 1 << depth
    identity = bytes(v for i in range(entries) for v in (i, i, i))
    parts = [_PNG_SIGNATURE]
    seen_palette = False
    seen_end = False
    for kind, _body, raw in _iter_png_chunks(data, name):
        if kind == b"PLTE":
            if not seen_palette:
                parts.append(_png_chunk(b"PLTE", identity))
            seen_palette = True
        elif kind == b"tRNS":
            continue  # transparency would add an alpha channel; labels have none
        else:
            parts.append(raw)
        seen_end = kind == b"IEND"
    if not seen_palette:
        raise DataError(f"mask {name} is a palette PNG without a palette (PLTE chunk); the file is corrupt")
    if not seen_end:
        raise DataError(f"mask {name} is a truncated PNG (no end chunk); replace it")
    array = _imdecode(b"".join(parts), cv2.IMREAD_UNCHANGED, name, "mask")
    if array.shape[:2] != (height, width):
        raise DataError(f"mask {name} decodes to {array.shape[:2]} but its header says {height}x{width}")
    if array.ndim == 3:
        array = array[:, :, 0]
    return np.ascontiguousarray(array.astype(np.uint8, copy=False))


def full_palette(palette_rgb: Sequence[Sequence[int]] | None) -> list[tuple[int, int, int]]:
    """Extend ``palette_rgb`` to 256 colours with VOC's colour map (so 255 = VOC's void colour)."""
    from fcn_edge.modelinfo import voc_palette

    colours = [tuple(int(c) for c in colour) for colour in (palette_rgb or [])][:256]
    for colour in colours:
        if len(colour) != 3 or any(c < 0 or c > 255 for c in colour):
            raise ValueError(f"palette colours are (R, G, B) triples of 0-255, got {colour}")
    voc = voc_palette(256)
    return colours + voc[len(colours):]  # type: ignore[operator]


def encode_palette_png(mask: np.ndarray, palette_rgb: Sequence[Sequence[int]] | None = None) -> bytes:
    """An 8-bit palette PNG (VOC style) of an index mask; byte-identical for equal inputs.

    ``palette_rgb`` gives the colours of the first indices (class colours, RGB); the rest of
    the 256 entries follow VOC's colour map.  Rows are stored unfiltered (filter 0), the
    natural choice for label maps, compressed with zlib level 9.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"a mask is a non-empty HxW array, got shape {mask.shape}")
    if mask.dtype != np.uint8:
        if mask.min() < 0 or mask.max() > 255:
            raise ValueError("mask values must be 0-255 to be written as a palette PNG")
        mask = mask.astype(np.uint8)
    height, width = mask.shape
    colours = full_palette(palette_rgb)
    raw = np.zeros((height, width + 1), dtype=np.uint8)  # a leading 0 per row = filter type None
    raw[:, 1:] = mask
    return b"".join([
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)),
        _png_chunk(b"PLTE", bytes(v for colour in colours for v in colour)),
        _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)),
        _png_chunk(b"IEND", b""),
    ])


def write_mask(path: str | os.PathLike, mask: np.ndarray, palette_rgb: Sequence[Sequence[int]] | None = None) -> Path:
    """Write an index mask as a VOC-style palette PNG, atomically."""
    from fcn_edge.fileio import atomic_write_bytes

    return atomic_write_bytes(path, encode_palette_png(mask, palette_rgb))


def read_palette(path: str | os.PathLike) -> list[tuple[int, int, int]] | None:
    """The RGB palette stored in a palette PNG, or None for other files."""
    data = read_file_bytes(path, "mask")
    header = _png_header(data)
    if header is None or header["colour_type"] != 3:
        return None
    for kind, body, _raw in _iter_png_chunks(data, str(path)):
        if kind == b"PLTE":
            return [tuple(body[i:i + 3]) for i in range(0, len(body) - len(body) % 3, 3)]  # type: ignore[misc]
    return None
