"""Hypothesis settings shared by the fuzz tests: reproducible in CI, wider on demand.

CI must not fail on one run and pass on the next, so the default profile ("ci") derives
every example from the test's own code (``derandomize=True``) and keeps no example
database.  A developer hunting for new failures runs::

    FCN_EDGE_FUZZ=explore FCN_EDGE_FUZZ_SCALE=25 python -m pytest -q tests -k fuzz

which draws fresh random examples, 25 times as many.  Whatever that finds becomes a
fix plus an ``@example`` in the test, so CI checks it from then on.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("FCN_EDGE_FUZZ", "ci"))

SCALE = max(1, int(os.environ.get("FCN_EDGE_FUZZ_SCALE", "1")))


def fuzz_settings(examples: int) -> settings:
    """``examples`` per test in CI (times FCN_EDGE_FUZZ_SCALE), no deadline: the CPU is shared."""
    return settings(max_examples=examples * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
