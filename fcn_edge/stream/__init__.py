"""Streaming: sources, sinks, visualisation, stats and the runner behind ``fcn-edge run``.

``StreamRunner(runner, "video.mp4", sinks=[parse_sink("out.mp4")]).run()`` processes a
source with any :mod:`fcn_edge.runtime` runner.  Importing this package imports neither
torch, tensorrt, pycuda nor OpenCV (cv2 is loaded when a source or sink opens).
"""

from fcn_edge.stream.feed import FrameFeed, ReconnectPolicy, default_policy
from fcn_edge.stream.frames import Frame, FrameResult, StreamEvent
from fcn_edge.stream.runner import RunConfig, StreamRunner
from fcn_edge.stream.sinks import (CallbackSink, DisplaySink, ImageFolderSink, NullSink, Sink, SinkError,
                                   VideoFileSink, parse_sink)
from fcn_edge.stream.sources import (Source, SourceOptions, SourceSpec, create_source, open_source,
                                     parse_source)
from fcn_edge.stream.stats import LatencyRecorder, StreamStats
from fcn_edge.stream.visualize import ViewOptions, Visualizer

__all__ = [
    "StreamRunner", "RunConfig", "FrameFeed", "ReconnectPolicy", "default_policy",
    "Frame", "FrameResult", "StreamEvent",
    "Sink", "SinkError", "NullSink", "CallbackSink", "DisplaySink", "ImageFolderSink", "VideoFileSink", "parse_sink",
    "Source", "SourceOptions", "SourceSpec", "create_source", "open_source", "parse_source",
    "StreamStats", "LatencyRecorder", "ViewOptions", "Visualizer",
]
