"""Latency statistics: percentiles the way numpy (and most benchmark tools) compute them.

Percentiles use linear interpolation between the two nearest ranks (numpy's default,
"method 7" of Hyndman & Fan): p50 of ``[1, 2, 3, 4]`` is 2.5, p99 of ``1..100`` is
99.01.  With few samples p99 is close to the maximum; the sample count is stored next
to every summary so a reader can tell.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

PERCENTILES = (50, 95, 99)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples`` with linear interpolation; nan when empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(np.percentile(values, q))


def summarize(samples: Iterable[float], digits: int = 3) -> dict[str, Any]:
    """``{count, mean, p50, p95, p99, min, max, std}`` of latencies in milliseconds."""
    values = np.asarray(list(samples), dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    p50, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    summary = {"count": int(values.size), "mean": float(values.mean()), "p50": p50, "p95": p95, "p99": p99,
               "min": float(values.min()), "max": float(values.max()), "std": float(values.std())}
    return {k: (v if isinstance(v, int) else round(v, digits)) for k, v in summary.items()}


def ratio(value: float | None, reference: float | None, digits: int = 4) -> float | None:
    """``value / reference`` to ``digits`` significant digits, or None when either is missing, zero or not finite."""
    if value is None or reference is None:
        return None
    if not (math.isfinite(value) and math.isfinite(reference)) or reference == 0:
        return None
    return float(f"{value / reference:.{digits}g}")


__all__ = ["PERCENTILES", "percentile", "summarize", "ratio"]
