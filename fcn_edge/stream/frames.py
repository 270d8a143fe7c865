"""What flows through the stream runner: frames, results and events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def now() -> float:
    """The runner's clock (monotonic, sub-microsecond): every latency is a difference of these."""
    return time.perf_counter()


@dataclass
class Frame:
    """One captured image and when it arrived.

    ``timestamp`` is :func:`now` when the frame reached us (after the camera/stream
    delivered it, before decoding where the two can be told apart); end-to-end latency
    is measured from it.  ``wall_time`` is the same instant as ``time.time()`` (for
    message stamps).  ``index`` counts frames read from this source, dropped ones
    included, so gaps show what the latest-frame policy skipped.  ``source_id`` tells
    sources apart when several feed one runner.  ``stamp_ns`` and ``frame_id`` are the
    recorded message's header stamp and frame (bags, ROS topics): sinks that write
    messages stamp their outputs with them; None/"" for cameras and files.
    """

    image: np.ndarray
    index: int
    timestamp: float
    wall_time: float
    source_id: int = 0
    name: str | None = None
    network_input: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stamp_ns: int | None = None
    frame_id: str = ""

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass
class FrameResult:
    """Segmentation of one frame, at the frame's own size.

    ``labels``: ``HxW`` class ids (uint8; int32 beyond 255 classes).  ``confidence``:
    ``HxW`` float32 when the model outputs it.  ``network_labels``: the labels at network
    resolution, before mapping back.  ``timings``: milliseconds per stage (capture,
    preprocess, inference, postprocess, end_to_end, render once sinks ran, and the
    backend's own ``backend_*`` figures).
    """

    frame: Frame
    labels: np.ndarray
    confidence: np.ndarray | None
    network_labels: np.ndarray
    timings: dict[str, float]
    class_names: list[str] = field(default_factory=list)
    # the model's (R, G, B) per class, so sinks colour masks as the model says (empty: VOC's)
    palette: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def image(self) -> np.ndarray:
        return self.frame.image

    @property
    def timestamp(self) -> float:
        return self.frame.timestamp

    @property
    def source_id(self) -> int:
        return self.frame.source_id


@dataclass
class StreamEvent:
    """Something that happened to a source or the run: opened, lost, reconnecting, reconnected,
    stalled, gave-up, ended, skipped, stats."""

    kind: str
    message: str
    source: str = ""
    source_id: int = 0
    time: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "source": self.source, "source_id": self.source_id,
                "time": round(self.time, 3), **({"data": self.data} if self.data else {})}
