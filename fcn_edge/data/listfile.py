"""List files: split lists (VOC ``ImageSets/Segmentation/train.txt``), calibration lists.

One entry per line; blank lines and lines starting with ``#`` are skipped; surrounding
white space is stripped.  A line holds either one item (an id such as ``2007_000032``,
or a path) or two white-space separated items (``image mask`` pairs, as in DeepLab's
``train_aug.txt``).  Relative paths are relative to the list file's folder, so a list
and its images can move together (``calib/synth.txt`` lists ``synth/0000.png``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from fcn_edge.errors import DataError


def parse_list_text(text: str, name: str = "<list>") -> list[list[str]]:
    """The entries of a list file's text: one list of 1 or 2 fields per non-comment line."""
    if "\x00" in text:
        raise DataError(f"list file {name} contains NUL bytes; it is not a text list")
    entries: list[list[str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) > 2:
            raise DataError(f"list file {name} line {number} has {len(fields)} fields; expected an id or path, "
                            "or 'image mask'")
        entries.append(fields)
    return entries


def read_list_file(path: str | os.PathLike) -> list[list[str]]:
    """Parse a list file (see the module doc); DataError when missing, binary or malformed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"list file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"list file {path} is a folder, not a text file") from None
    except OSError as exc:
        raise DataError(f"cannot read list file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"list file {path} is not UTF-8 text; is it really a list of ids or paths?") from None
    return parse_list_text(text, str(path))


def read_ids(path: str | os.PathLike) -> list[str]:
    """A list of single ids (a split file); DataError when a line has two fields."""
    ids = []
    for fields in read_list_file(path):
        if len(fields) != 1:
            raise DataError(f"split file {path} has a line with two fields ({' '.join(fields)}); "
                            "expected one id per line")
        ids.append(fields[0])
    return ids


def read_image_list(path: str | os.PathLike) -> list[Path]:
    """Image paths of a one-column list file, resolved against the list file's folder."""
    path = Path(path)
    paths = []
    for fields in read_list_file(path):
        if len(fields) != 1:
            raise DataError(f"image list {path} has a line with two fields ({' '.join(fields)}); "
                            "expected one image path per line")
        paths.append(resolve_listed(path.parent, fields[0]))
    if not paths:
        raise DataError(f"image list {path} lists no images")
    return paths


def resolve_listed(base: Path, item: str) -> Path:
    """A listed path: absolute as given; relative (or DeepLab-style '/JPEGImages/x.jpg') under ``base``."""
    candidate = Path(item)
    if candidate.is_absolute() and candidate.exists():
        return candidate
    return base / item.lstrip("/\\")


def format_list(items: Iterable[str | os.PathLike], base: Path | None = None, header: str | None = None) -> str:
    """Text of a list file; paths are written relative to ``base`` (POSIX separators)."""
    lines = [f"# {line}" for line in (header or "").splitlines()]
    for item in items:
        text = str(item)
        if base is not None and isinstance(item, Path):
            try:
                text = item.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                text = item.resolve().as_posix()
        if any(c.isspace() for c in text):
            raise DataError(f"cannot list {text!r}: list entries may not contain spaces")
        lines.append(text)
    return "\n".join(lines) + "\n"


def write_list_file(path: str | os.PathLike, items: Iterable[str | os.PathLike], header: str | None = None) -> Path:
    """Write a list file atomically; Path items are stored relative to the list's folder."""
    from fcn_edge.fileio import atomic_write_text

    path = Path(path)
    return atomic_write_text(path, format_list(items, path.parent, header))
