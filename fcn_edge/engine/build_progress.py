"""Progress of an engine build: TensorRT's progress monitor where it exists, phases otherwise.

TensorRT 10+ reports its optimiser's phases through ``IProgressMonitor`` (phase_start,
step_complete, phase_finish, from several threads).  :class:`MonitorBars` turns those
calls into fcn-edge progress bars; the TensorRT-facing subclass in
:mod:`fcn_edge.engine.trt_build` only forwards to it, so this logic is tested without
TensorRT.  TensorRT 8.x reports nothing while it builds, so :class:`PhaseTicker` shows
the current phase and the elapsed time, ticking once a second.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fcn_edge.progress import progress


class MonitorBars:
    """One bar per top-level optimiser phase; nested phases appear in its postfix."""

    def __init__(self, make_bar: Any = progress) -> None:
        self._make_bar = make_bar
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._parents: dict[str, str | None] = {}
        self.cancelled = False
        self.phases_seen: list[str] = []

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            self.phases_seen.append(phase_name)
            self._parents[phase_name] = parent_phase
            if parent_phase is None:
                self._bars[phase_name] = self._make_bar(total=max(int(num_steps), 1), desc=f"TensorRT: {phase_name}",
                                                        unit="step", leave=False)
            else:
                top = self._top(parent_phase)
                if top in self._bars:
                    self._bars[top].set_postfix_str(phase_name, refresh=True)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.update(max(0, int(step) + 1 - bar.n))
            return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    def _top(self, phase: str) -> str:
        seen = 0
        while self._parents.get(phase) is not None and seen < 32:
            phase = self._parents[phase]  # type: ignore[assignment]
            seen += 1
        return phase


class PhaseTicker:
    """A bar showing the current phase and elapsed time, refreshed by a daemon thread."""

    def __init__(self, make_bar: Any = progress, interval: float = 1.0) -> None:
        self._bar = make_bar(total=None, desc="engine build", unit="s", leave=True,
                             bar_format="{desc} [{elapsed}]")
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self.started = time.monotonic()
        self.phases: list[str] = []

    def __enter__(self) -> "PhaseTicker":
        self._thread.start()
        return self

    def phase(self, name: str) -> None:
        self.phases.append(name)
        self._bar.set_description_str(name, refresh=True)

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            self._bar.refresh()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._bar.close()
