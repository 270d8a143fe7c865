"""Robust reading and writing of images and label masks.

Images are read by :mod:`fcn_edge.imaging` (the device side's robust image reading,
which the streaming image source uses too); this module re-exports it for datasets and
adds masks, palettes and writing.

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
from fcn_edge.imaging import (  # noqa: F401 - the device side's image reading, re-exported for datasets
    IMAGE_EXTENSIONS, MAX_PIXELS, NOTE_16BIT, NOTE_ALPHA, NOTE_GRAYSCALE, LoadedImage, _first_line, _imdecode,
    decode_image, load_image, read_file_bytes, read_image,
)
from fcn_edge.lazy import opencv

IGNORE_INDEX = 255

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".pgm", ".pnm")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    from fcn_edge.artifacts.modelinfo import voc_palette

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
