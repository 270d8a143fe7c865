"""Random bytes into the readers: a DataError or a valid result, never any other exception."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fcn_edge.data.imageio import decode_image, decode_mask  # noqa: E402
from fcn_edge.data.listfile import parse_list_text, read_list_file  # noqa: E402
from fcn_edge.errors import DataError  # noqa: E402

from tests.fuzzing import fuzz_settings  # noqa: E402

FUZZ = fuzz_settings(50)
SIGNATURES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"RIFF", b"P6\n"]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@st.composite
def palette_pngs(draw):
    """Structurally plausible palette PNGs with random sizes, depths, palettes and (often broken) data."""
    width, height = draw(st.integers(0, 40)), draw(st.integers(0, 40))
    depth = draw(st.sampled_from([1, 2, 4, 8, 16, 3]))
    palette = draw(st.binary(min_size=0, max_size=30))
    data = draw(st.binary(min_size=0, max_size=300))
    if draw(st.booleans()):
        data = zlib.compress(data)
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 3, 0, 0,
                                                                  draw(st.integers(0, 1))))]
    if draw(st.booleans()):
        parts.append(_chunk(b"PLTE", palette))
    parts.append(_chunk(b"IDAT", data))
    if draw(st.booleans()):
        parts.append(_chunk(b"IEND", b""))
    blob = b"".join(parts)
    cut = draw(st.integers(8, len(blob)))
    return blob[:cut]


@FUZZ
@given(prefix=st.sampled_from(SIGNATURES), body=st.binary(max_size=400))
def test_image_decoder_only_raises_data_error(prefix, body):
    try:
        loaded = decode_image(prefix + body, "fuzz")
    except DataError:
        return
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.ndim == 3 and loaded.pixels.shape[2] == 3


@FUZZ
@given(prefix=st.sampled_from(SIGNATURES), body=st.binary(max_size=400), classes=st.integers(1, 30))
def test_mask_decoder_only_raises_data_error(prefix, body, classes):
    try:
        mask = decode_mask(prefix + body, "fuzz", num_classes=classes)
    except DataError:
        return
    assert mask.dtype == np.uint8 and mask.ndim == 2


@FUZZ
@given(blob=palette_pngs())
def test_palette_png_path_only_raises_data_error(blob):
    try:
        mask = decode_mask(blob, "fuzz.png")
    except DataError:
        return
    assert mask.dtype == np.uint8 and mask.ndim == 2


@FUZZ
@given(data=st.binary(max_size=300))
def test_list_file_parser_only_raises_data_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "list.txt"
    path.write_bytes(data)
    try:
        rows = read_list_file(path)
    except DataError:
        return
    assert all(1 <= len(row) <= 2 and all(field.strip() == field and field for field in row) for row in rows)


@FUZZ
@given(text=st.text(max_size=200))
def test_list_text_parser_only_raises_data_error(text):
    try:
        parse_list_text(text, "fuzz.txt")
    except DataError:
        pass
