"""Latency statistics and ratios on samples whose answers are known by hand."""

from __future__ import annotations

import math

import pytest

from fcn_edge.bench.stats import percentile, ratio, summarize


def test_percentiles_interpolate_linearly_between_ranks():
    samples = list(range(1, 101))  # 1..100
    assert percentile(samples, 50) == pytest.approx(50.5)
    assert percentile(samples, 95) == pytest.approx(95.05)
    assert percentile(samples, 99) == pytest.approx(99.01)
    assert percentile(samples, 0) == 1 and percentile(samples, 100) == 100
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)  # order does not matter
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(samples, 101)


def test_summary_of_known_latencies():
    summary = summarize([10.0, 20.0, 30.0, 40.0, 1000.0])
    assert summary["count"] == 5
    assert summary["mean"] == pytest.approx(220.0)
    assert summary["p50"] == 30.0
    assert summary["p95"] == pytest.approx(40 + 0.8 * 960)  # rank 3.8 of 0..4
    assert summary["p99"] == pytest.approx(40 + 0.96 * 960)
    assert summary["min"] == 10.0 and summary["max"] == 1000.0
    assert summarize([]) == {"count": 0}


def test_ratios_refuse_missing_or_zero_references():
    assert ratio(5.0, 10.0) == 0.5
    assert ratio(30.0, 10.0) == 3.0
    assert ratio(None, 10.0) is None and ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None and ratio(float("nan"), 1.0) is None
