"""Small on-disk datasets in each layout, written fresh for each test that needs one."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from fcn_edge.artifacts.modelinfo import voc_palette

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def handmade_palette_png(indices: np.ndarray, palette_rgb, *, bit_depth: int = 8, filters=(0,),
                         transparency: bytes | None = None) -> bytes:
    """A palette PNG written byte by byte (independent of fcn_edge's encoder).

    Rows cycle through ``filters`` (0 None, 1 Sub, 2 Up) so the reader must undo real
    PNG filtering; ``bit_depth`` < 8 packs several indices per byte, as PNG does.
    """
    h, w = indices.shape
    per_byte = 8 // bit_depth
    rows = []
    for y in range(h):
        values = indices[y].astype(np.int64)
        if bit_depth == 8:
            rows.append(values.astype(np.uint8))
            continue
        packed = bytearray()
        for x0 in range(0, w, per_byte):
            byte = 0
            for k in range(per_byte):
                value = int(values[x0 + k]) if x0 + k < w else 0
                byte |= value << (8 - bit_depth * (k + 1))
            packed.append(byte)
        rows.append(np.frombuffer(bytes(packed), dtype=np.uint8))
    raw = bytearray()
    previous = np.zeros_like(rows[0])
    for y, row in enumerate(rows):
        kind = filters[y % len(filters)]
        if kind == 0:
            filtered = row
        elif kind == 1:
            filtered = (row.astype(np.int64) - np.concatenate([[0], row[:-1]]).astype(np.int64)) % 256
        elif kind == 2:
            filtered = (row.astype(np.int64) - previous.astype(np.int64)) % 256
        else:
            raise ValueError(kind)
        raw.append(kind)
        raw += bytes(np.asarray(filtered, dtype=np.uint8))
        previous = row
    chunks = [PNG_SIGNATURE, png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, 3, 0, 0, 0)),
              png_chunk(b"PLTE", bytes(v for colour in palette_rgb for v in colour))]
    if transparency is not None:
        chunks.append(png_chunk(b"tRNS", transparency))
    chunks += [png_chunk(b"IDAT", zlib.compress(bytes(raw))), png_chunk(b"IEND", b"")]
    return b"".join(chunks)


def random_mask(rng, size, num_classes, ignore_border=True):
    h, w = size
    mask = np.zeros(size, dtype=np.uint8)
    for c in range(1, num_classes):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        mask[y:y + rng.integers(3, h // 2), x:x + rng.integers(3, w // 2)] = c
    if ignore_border:
        mask[0, :] = 255
    return mask


def write_jpeg(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def write_png(path: Path, array: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture
def voc_root(tmp_path):
    """VOCdevkit/VOC2012 with 5 images, VOC palette masks (255 borders), train/val/trainval lists."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(0)
    ids = [f"2007_00{i:04d}" for i in range(5)]
    palette = voc_palette(256)
    for i, sample_id in enumerate(ids):
        size = (40 + 4 * i, 56)
        write_jpeg(root / "JPEGImages" / f"{sample_id}.jpg", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        mask = random_mask(rng, size, 21)
        (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        (root / "SegmentationClass" / f"{sample_id}.png").write_bytes(
            handmade_palette_png(mask, palette, filters=(0, 1, 2)))
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(ids[:3]) + "\n")
    (lists / "val.txt").write_text("\n".join(ids[3:]) + "\n")
    (lists / "trainval.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture
def folder_root(tmp_path):
    """root/images + root/masks (grayscale index PNGs), classes.txt, train/val list files, 4 classes."""
    root = tmp_path / "folder"
    rng = np.random.default_rng(1)
    for i in range(6):
        write_png(root / "images" / f"img{i}.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
        write_png(root / "masks" / f"img{i}.png", random_mask(rng, (32, 48), 4))
    (root / "classes.txt").write_text("background\na\nb\nc\n")
    (root / "train.txt").write_text("# training ids\nimg0\nimg1\nimg2\nimg3\n")
    (root / "splits").mkdir()
    (root / "splits" / "val.txt").write_text("images/img4.png\nimg5\n")
    return root
