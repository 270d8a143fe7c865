"""Progress for long work (training, evaluation, calibration, export checks, benchmarks).

A thin wrapper over tqdm so every bar looks alike and can be silenced in one place.
Output goes to stderr.  On a terminal it is a bar.  When stderr is not a terminal (CI,
docker logs, ssh with redirection, systemd's journal) a bar would be either noise or
nothing, and a log that stays silent for minutes looks like a hang: there every long
step prints one plain line at a steady interval instead (``train fcn8s: 120/800 it
(15%), 1.9 it/s, ETA 5 min 58 s``), every ``FCN_EDGE_PROGRESS_INTERVAL`` seconds
(default 15).  ``FCN_EDGE_PROGRESS=1`` forces bars, ``FCN_EDGE_PROGRESS=0`` hides
everything.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm
from tqdm.std import tqdm as std_tqdm

T = TypeVar("T")

DEFAULT_INTERVAL_S = 15.0


def _mode() -> str:
    """``"bar"``, ``"lines"`` (plain lines, off a terminal) or ``"off"``."""
    setting = os.environ.get("FCN_EDGE_PROGRESS")
    if setting == "0":
        return "off"
    if setting == "1":
        return "bar"
    return "bar" if sys.stderr.isatty() else "lines"


def line_interval() -> float:
    """Seconds between plain progress lines: ``FCN_EDGE_PROGRESS_INTERVAL`` (a number) or 15."""
    text = os.environ.get("FCN_EDGE_PROGRESS_INTERVAL", "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if math.isfinite(value) and value >= 0 else DEFAULT_INTERVAL_S


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"5 min 58 s"``, ``"2 h 03 min"``: a log reader's ETA."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(desc: str, n: float, total: float | None, elapsed: float, unit: str, initial: float = 0) -> str:
    """One plain line: step, done/total, rate and ETA (what a log needs, no carriage returns).

    ``initial``: where a resumed run started, so the rate counts only this run's work.
    """
    done = f"{n:g}/{total:g} {unit}" if total else f"{n:g} {unit}"
    if total:
        done += f" ({100.0 * n / total:.0f}%)"
    rate = (n - initial) / elapsed if elapsed > 0 else 0.0
    parts = [f"{desc}: {done}" if desc else done, f"{rate:.3g} {unit}/s", f"elapsed {format_duration(elapsed)}"]
    if total and rate > 0 and n < total:
        parts.append(f"ETA {format_duration((total - n) / rate)}")
    return ", ".join(parts)


class PlainLines(std_tqdm):
    """tqdm that writes a whole line every ``mininterval`` seconds instead of redrawing a bar."""

    def __init__(self, *args, **kwargs) -> None:
        self._last_n: float | None = None
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None) -> bool:  # noqa: D102 - tqdm's hook
        info = self.format_dict
        line = progress_line(info.get("prefix") or "", info["n"], info.get("total"), info["elapsed"],
                             info.get("unit") or "it", info.get("initial") or 0)
        if info["n"] != self._last_n:  # close() right after the last update would repeat it
            self._last_n = info["n"]
            self.fp.write(line + "\n")
            self.fp.flush()
        return True

    def close(self) -> None:
        """A last line with the final count; none of tqdm's bar clearing (no blank line, no ``\\r``)."""
        if getattr(self, "disable", True):
            return
        self.display()
        self.disable = True
        self._decr_instances(self)


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", leave: bool = True, disable: bool = False, **kwargs) -> "tqdm[T]":
    """A progress bar (or plain log lines) with fcn-edge's defaults; an iterator or a context manager.

    ``disable=True`` hides it whatever the environment says (e.g. on DDP ranks > 0).
    """
    mode = _mode()
    if mode == "lines" and not disable:
        interval = line_interval()
        return PlainLines(iterable, total=total, desc=desc, unit=unit, leave=True, file=sys.stderr,
                          mininterval=interval, maxinterval=max(interval, 10.0), miniters=1, **kwargs)
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable or mode == "off",
                file=sys.stderr, dynamic_ncols=True, **kwargs)
