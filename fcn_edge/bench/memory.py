"""Host memory of this process: current RSS (sampled) and the kernel's high-water mark.

psutil when installed, else ``/proc/self/statm`` (Linux, Jetson); the high-water mark is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (kilobytes on Linux, bytes on macOS).
The high-water mark covers the whole process lifetime, so when several models are
benchmarked in one process it includes the earlier ones; the sampled peak is taken per
model (after opening, after warm-up and after every timed batch) and misses short
spikes inside a run.
"""

from __future__ import annotations

import os
import sys
from typing import Callable


def _rss_reader() -> Callable[[], int | None]:
    try:
        import psutil  # type: ignore[import-untyped]

        process = psutil.Process()
        return lambda: int(process.memory_info().rss)
    except ImportError:
        pass
    statm = "/proc/self/statm"
    if os.path.exists(statm):
        page = os.sysconf("SC_PAGE_SIZE")

        def read() -> int | None:
            try:
                with open(statm) as handle:
                    return int(handle.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                return None

        return read
    return lambda: None


current_rss_bytes: Callable[[], int | None] = _rss_reader()


def max_rss_bytes() -> int | None:
    """The process's peak resident set size so far (kernel high-water mark), or None."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class RssSampler:
    """Keeps the largest RSS seen by :meth:`sample` (call it outside timed regions)."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self.sample()

    def sample(self) -> None:
        value = current_rss_bytes()
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value


__all__ = ["current_rss_bytes", "max_rss_bytes", "RssSampler"]
