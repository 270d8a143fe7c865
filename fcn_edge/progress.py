"""Progress bars for long work (training, calibration, export checks, engine builds).

A thin wrapper over tqdm so every bar looks alike and can be silenced in one place:
bars go to stderr, are hidden when stderr is not a terminal (CI logs stay readable)
unless ``FCN_EDGE_PROGRESS=1``, and always hidden with ``FCN_EDGE_PROGRESS=0``.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _disabled() -> bool | None:
    setting = os.environ.get("FCN_EDGE_PROGRESS")
    if setting == "0":
        return True
    if setting == "1":
        return False
    return not sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", leave: bool = True, disable: bool = False, **kwargs) -> "tqdm[T]":
    """A tqdm bar with fcn-edge's defaults; usable as an iterator or a context manager.

    ``disable=True`` hides this bar whatever the environment says (e.g. on DDP ranks > 0).
    """
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable or _disabled(),
                file=sys.stderr, dynamic_ncols=True, **kwargs)
