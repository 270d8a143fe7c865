"""The thread protocol both stream runners share (one source: ``runner.py``, several: ``multi.py``).

An inference thread submits work to the backend, keeping up to the runner's
``max_in_flight`` submissions outstanding, and hands results to the caller's thread
through a small bounded queue; the caller's thread finishes each frame (sinks,
stats) and yields it.  The part kept here is the one that is easy to get subtly
wrong and must behave the same for one source and for many: single use; ``stop()``
from any thread or a signal handler; a failure in the inference thread re-raised in
the caller's; the backend's buffer sets freed when a run ends early; the inference
thread joined before the sinks are closed; a source that cannot open still closing
the sinks already opened.

Subclasses say where frames come from and where results go, through the hooks at
the end of :class:`StreamPipeline`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from contextlib import nullcontext
from typing import Any, Callable, Iterator

from fcn_edge.runtime.base import Runner
from fcn_edge.stream.frames import FrameResult, StreamEvent, now

log = logging.getLogger(__name__)

_END = object()  # the inference thread is done: no more results


class _Failure:
    """An exception of the inference thread, carried to the caller's thread to be raised there."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def failure_message(error: BaseException | None) -> str | None:
    """The stats' error text for what ended a run; None when nothing failed (a Ctrl-C or a closed generator is a stop)."""
    if error is None or isinstance(error, (KeyboardInterrupt, GeneratorExit)):
        return None
    return f"{type(error).__name__}: {error}"


def notify_event(callback: Callable[[StreamEvent], None] | None, event: StreamEvent) -> None:
    """Hand ``event`` to a user callback; a failing callback is logged, it must not break the stream."""
    if callback is None:
        return
    try:
        callback(event)
    except Exception:  # noqa: BLE001 - user callbacks must not break the stream
        log.exception("event callback failed")


class StreamPipeline:
    """Inference thread -> bounded result queue -> the caller's thread; see the module docstring.

    A pending submission is ``(work, handle, start)``: what the subclass needs to
    deliver the result (a frame, or a batch of them), the backend's handle and the
    :func:`now` at submission.
    """

    thread_name = "fcn-edge-infer"

    def __init__(self, runner: Runner, config: Any, *, on_result: Callable[[FrameResult], None] | None,
                 on_event: Callable[[StreamEvent], None] | None, lock: threading.Lock | None,
                 result_queue: int) -> None:
        self.runner = runner
        self.config = config
        self.on_result = on_result
        self.on_event = on_event
        self.lock = lock
        self._stopping = threading.Event()
        self._stop_reason: str | None = None
        self._out: queue.Queue[Any] = queue.Queue(maxsize=max(1, result_queue))
        self._thread: threading.Thread | None = None
        self._used = False
        self._last_report = 0.0

    # ---------------------------------------------------------------- control
    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end (thread- and signal-safe); sinks are finalised normally."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stopping.set()
        self._stop_feeds()

    @property
    def stopping(self) -> bool:
        """True once stop() was called or the run is ending."""
        return self._stopping.is_set()

    def run(self):
        """Process the whole stream (until it ends, stop() or a signal); returns the stats."""
        for _ in self.results():
            pass
        return self.stats

    # ----------------------------------------------------------------- the run
    def results(self) -> Iterator[FrameResult]:
        if self._used:
            raise RuntimeError(f"a {type(self).__name__} runs once; create a new one")
        self._used = True
        error: BaseException | None = None
        try:
            self._open()
            self._last_report = now()
            if self._stopping.is_set():  # stop() arrived while opening
                self._stop_feeds()
            self._thread = threading.Thread(target=self._infer_loop, name=self.thread_name, daemon=True)
            self._thread.start()
            while (item := self._next_item()) is not _END:
                result = self._finish(item)
                if result is None:
                    continue
                self._maybe_report()
                yield result
                self._after_yield(result)
        except GeneratorExit:
            self.stop("stopped")
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._shutdown(error)
        self._raise_if_lost()

    def _next_item(self) -> Any:
        """The next item from the inference thread (``_END`` once it is done); its failure is raised here."""
        while True:
            try:
                item = self._out.get(timeout=0.1)
            except queue.Empty:
                self._maybe_report()
                if self._stopping.is_set() and not self._thread.is_alive() and self._out.empty():
                    return _END
                continue
            if isinstance(item, _Failure):
                raise item.exc
            return item

    def _infer_loop(self) -> None:
        pending: deque[tuple[Any, Any, float]] = deque()
        depth = 1 if self.lock is not None else max(1, int(getattr(self.runner, "max_in_flight", 1)))
        try:
            while not self._stopping.is_set():
                # collect at once when no newer frame waits: holding a result back only adds latency
                if pending and (len(pending) >= depth or not self._frame_waiting()):
                    if not self._deliver(*pending.popleft()):
                        break
                    continue
                if not self._submit_next(pending):
                    break
            while pending and not self._stopping.is_set():
                if not self._deliver(*pending.popleft()):
                    break
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._put(_Failure(exc))
        finally:
            for _, handle, _ in pending:  # free the backend's buffer sets
                try:
                    handle.result()
                except Exception:  # noqa: BLE001
                    pass

    def _submit(self, batch: Any) -> Any:
        """Submit ``batch``; with a shared lock (several streams on one runner) the call completes under it."""
        if self.lock is None:
            return self.runner.submit(batch)
        with self.lock:
            handle = self.runner.submit(batch)
            handle.result()
        return handle

    def _warmup(self, size: tuple[int, int] | None, **options: Any) -> None:
        if self.config.warmup <= 0 or size is None:
            return
        start = now()
        with self.lock or nullcontext():
            self.runner.warmup(size, iterations=self.config.warmup, **options)
        log.debug("warm-up: %.1f ms", (now() - start) * 1000.0)

    def _put(self, item: Any) -> bool:
        """Queue ``item`` for the caller's thread; False when the run stopped while the queue was full."""
        while True:
            try:
                self._out.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self._stopping.is_set():
                    return False

    def _report_due(self) -> bool:
        """True when ``config.stats_interval`` has passed since the last progress line (and restarts the clock)."""
        interval = self.config.stats_interval
        if not interval:
            return False
        t = now()
        if t - self._last_report < interval:
            return False
        self._last_report = t
        return True

    def _backend_description(self) -> Any:
        try:
            return self.runner.describe()
        except Exception:  # noqa: BLE001 - description is informative only
            return {"backend": self.runner.backend}

    def _shutdown(self, error: BaseException | None) -> None:
        self._stopping.set()
        self._stop_feeds()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            if self._thread.is_alive():
                log.warning("the inference thread did not stop within 10 s")
        self._close(error)

    # ------------------------------------------------------------------ hooks
    def _open(self) -> None:
        """Open sinks, warm up, start the sources and stats clocks (a source that cannot open raises)."""
        raise NotImplementedError

    def _stop_feeds(self) -> None:
        """Stop capturing (from any thread)."""
        raise NotImplementedError

    def _frame_waiting(self) -> bool:
        """Inference thread: a captured frame is ready to submit."""
        raise NotImplementedError

    def _submit_next(self, pending: deque) -> bool:
        """Inference thread: submit what is captured, append to ``pending``; False once every source ended."""
        raise NotImplementedError

    def _deliver(self, work: Any, handle: Any, start: float) -> bool:
        """Inference thread: :meth:`_put` the results of ``handle``; False when the run stopped meanwhile."""
        raise NotImplementedError

    def _finish(self, item: Any) -> FrameResult | None:
        """Caller's thread: a delivered item to a result (sinks, stats); None skips it."""
        raise NotImplementedError

    def _after_yield(self, result: FrameResult) -> None:
        """Caller's thread, once the consumer had ``result``: the stop conditions (window closed, max frames)."""
        raise NotImplementedError

    def _maybe_report(self) -> None:
        """Caller's thread: the periodic progress line when :meth:`_report_due`."""
        raise NotImplementedError

    def _close(self, error: BaseException | None) -> None:
        """Once the inference thread ended: finish the stats, close the sinks."""
        raise NotImplementedError

    def _raise_if_lost(self) -> None:
        """After a clean end: raise for a live source lost for good."""
        raise NotImplementedError


__all__ = ["StreamPipeline", "failure_message", "notify_event"]
